"""Gradients in NumPy: a hand-written backward for every layer of the forward pass, equal to torch autograd.

    import minivivit, minivivit.grad
    loss, grads = minivivit.grad.value_and_grad(model, pixel_values, labels)   # grads nested like model.params
    g = minivivit.grad.backward(model, x, labels, input_grad=True, attention_grads=[11])
    g.loss, g.params, g.output.logits, g.pixel_values, g.attentions[11]       # dL/dx, dL/dA of layer 11

Files: layers.py (linear, LayerNorm, softmax, cross-entropy, tubelets, CLS/position, heads),
activations.py (every hidden_act), attention.py (multi-head attention, recomputed head by head),
dropout.py (training-mode dropout as a forward tap), block.py (one encoder block), model.py
(the whole model: value_and_grad / backward). See docs/training.md.
"""

from .activations import DERIVATIVES, activation_backward
from .attention import attention_backward
from .block import BlockRecorder, encoder_block_backward
from .dropout import Dropout, dropout_backward
from .layers import (
    cls_linear_backward,
    cross_entropy,
    embed_backward,
    layer_norm_backward,
    linear_backward,
    resize_grid_backward,
    softmax_backward,
    tubelet_embed_backward,
    unpatchify,
)
from .model import Gradients, backward, value_and_grad

__all__ = [
    "DERIVATIVES", "BlockRecorder", "Dropout", "Gradients", "activation_backward", "attention_backward", "backward",
    "cls_linear_backward", "cross_entropy", "dropout_backward", "embed_backward", "encoder_block_backward",
    "layer_norm_backward", "linear_backward", "resize_grid_backward", "softmax_backward", "tubelet_embed_backward",
    "unpatchify", "value_and_grad",
]
