"""aunet: Attention U-Net (Oktay et al., MIDL 2018), built to be read, run and reproduced."""
from aunet.gate import AttentionGate, GatedSkip
from aunet.unet import AttentionUNet, UNet, check_input_size, count_parameters

__version__ = "0.1.0"
__all__ = ["AttentionGate", "GatedSkip", "UNet", "AttentionUNet", "check_input_size", "count_parameters"]
