#!/usr/bin/env python
"""Train, evaluate and predict with korclf from a YAML/JSON config.

    python recipes/run.py recipes/configs/quickstart.yaml [--key value ...]
    accelerate launch --config_file accelerate_configs/cpu.yaml recipes/run.py CONFIG [--key value ...]
"""
import sys

from korclf.run import main

if __name__ == "__main__":
    sys.exit(main())
