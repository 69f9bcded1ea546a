# --- begin rbert: R-BERT relation classification (korclf-rbert) ---
from transformers import AutoConfig as _AutoConfig
from transformers import AutoModelForSequenceClassification as _AutoModelForSequenceClassification

from .configuration_rbert import RBertConfig
from .modeling_rbert import RBertForSequenceClassification

_AutoConfig.register("korclf-rbert", RBertConfig, exist_ok=True)
_AutoModelForSequenceClassification.register(RBertConfig, RBertForSequenceClassification, exist_ok=True)
RBertConfig.register_for_auto_class()
RBertForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
# --- end rbert ---

# --- begin encoder: pooled encoder (korclf-encoder) and multi-column ensemble (korclf-multi-encoder) ---
from transformers import AutoConfig as _AutoConfig
from transformers import AutoModelForSequenceClassification as _AutoModelForSequenceClassification

from .configuration_encoder import EncoderClassifierConfig
from .configuration_multi_encoder import MultiEncoderConfig
from .modeling_encoder import EncoderForSequenceClassification
from .modeling_multi_encoder import MultiEncoderForSequenceClassification, column_input_name

for _config, _model in (
    (EncoderClassifierConfig, EncoderForSequenceClassification),
    (MultiEncoderConfig, MultiEncoderForSequenceClassification),
):
    _AutoConfig.register(_config.model_type, _config, exist_ok=True)
    _AutoModelForSequenceClassification.register(_config, _model, exist_ok=True)
    _config.register_for_auto_class()  # save_pretrained copies the code and writes auto_map
    _model.register_for_auto_class("AutoModelForSequenceClassification")
# --- end encoder ---
