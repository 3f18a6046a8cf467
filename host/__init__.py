"""Host runtime of convaccel: layers and networks on any ``conv_accel`` backend.

* :mod:`~convaccel.host.layer` - :class:`ConvLayer`, one quantized layer
  and what the hardware needs for it;
* :mod:`~convaccel.host.lowering` - a layer as register writes and stream
  bytes (:func:`lower`);
* :mod:`~convaccel.host.tiling` - layers beyond the build's maxima as
  several passes (:func:`plan_passes`);
* :mod:`~convaccel.host.transport` - the five-method :class:`Transport`
  protocol a backend implements;
* :mod:`~convaccel.host.device` - :class:`Accelerator`, which runs lowered
  layers through a transport;
* :mod:`~convaccel.host.program` and :mod:`~convaccel.host.runtime` - a
  network program (hardware layers and host steps) and its execution;
* :mod:`~convaccel.host.onnx_import` - quantized ONNX models to programs.

It imports ``hw`` for the register map and the stream formats and
``golden`` only to check results; never ``sim``.
"""

from .device import Accelerator, DeviceError, LayerRun, decode_error
from .layer import ConvLayer
from .lowering import LoweredLayer, lower
from .tiling import Pass, TilingError, assemble, pass_layer, plan_passes
from .transport import Transport, TransportError

__all__ = ["Accelerator", "ConvLayer", "DeviceError", "LayerRun", "LoweredLayer", "Pass",
           "TilingError", "Transport", "TransportError", "assemble", "decode_error", "lower",
           "pass_layer", "plan_passes"]
