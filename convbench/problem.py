"""One convolution problem and its canonical descriptor string.

The descriptor follows oneDNN benchdnn's convolution syntax, so shape lists can be moved between the two
tools: ``g1mb50ic3ih224iw224oc64oh112ow112kh7kw7sh2sw2ph3pw3n"resnet_50:conv1"``.

=======  ==============================================  =================================
key      meaning                                         default when absent
=======  ==============================================  =================================
``g``    groups                                          1
``mb``   minibatch N                                     2 (as in benchdnn)
``ic``   input channels C (all groups together)          required
``ih``   input height H                                  required
``iw``   input width W                                   ``ih``
``oc``   output channels K (all groups together)         required
``oh``   output height P; checked when given             computed
``ow``   output width Q; checked when given              computed
``kh``   filter height R                                 required
``kw``   filter width S                                  ``kh``
``sh``   stride along H                                  1
``sw``   stride along W                                  ``sh``
``ph``   zero padding on each side along H               0
``pw``   zero padding on each side along W               ``ph``
``dh``   dilation along H, benchdnn style: 0 is dense    0
``dw``   dilation along W                                ``dh``
``n``    a name, ``n"resnet50:res2a"`` or ``nres2a``     none
=======  ==============================================  =================================

Inside :class:`ConvProblem` dilation is stored the way numpy and PyTorch users write it (1 is dense);
the descriptor's ``dh`` is that value minus one.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

DESCRIPTOR_KEYS = ("g", "mb", "ic", "ih", "iw", "oc", "oh", "ow", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw")
_THREE_D_KEYS = ("id", "od", "kd", "sd", "pd", "dd")
# benchdnn's asymmetric right/bottom padding; not modelled here.
_UNSUPPORTED_KEYS = ("rh", "rw", "rd")
_TOKEN = re.compile(r'_?([a-z]+)(-?\d+)')
_NAME = re.compile(r'_?n(?:"([^"]*)"|([^"\s]+))$')


def _pair(value, field):
    """Normalise an int or a 2-sequence to a tuple of two ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{field} must be an int or a pair (h, w), got {value!r}")
        pair = tuple(value)
    else:
        pair = (value, value)
    for item in pair:
        if isinstance(item, bool) or not isinstance(item, int):
            raise ValueError(f"{field} must hold integers, got {value!r}")
    return pair


@dataclass(frozen=True)
class ConvProblem:
    """A 2-D forward convolution: NCHW float32 input, KCRS filters, NKPQ output.

    Parameters
    ----------
    n, c, h, w : int
        Batch size, input channels (over all groups), input height and width.
    k, r, s : int
        Output channels (over all groups), filter height and width.
    stride, padding, dilation : int or (int, int)
        Per (height, width). ``padding`` is zero padding on both sides; ``dilation`` 1 is dense.
    groups : int
        ``c`` and ``k`` must both be divisible by it; each group sees ``c // groups`` channels.
    name : str
        Free text (a layer name) carried into results; not part of the arithmetic.
    count : int or None
        How many times the network runs this layer, where a shape file says (a trailing ``x3``
        on its line): a set lists each distinct layer once, and the count lets a report add the
        layers up into the network's total. None when not stated. Not part of the descriptor.

    Raises
    ------
    ValueError
        Naming the field and value when a size is not positive, the dilated filter is larger than the
        padded input, or channels are not divisible by groups.
    """

    n: int
    c: int
    h: int
    w: int
    k: int
    r: int
    s: int
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1
    name: str = ""
    count: int = dataclasses.field(default=None, compare=False)

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: normalise in place once
        set_(self, "stride", _pair(self.stride, "stride"))
        set_(self, "padding", _pair(self.padding, "padding"))
        set_(self, "dilation", _pair(self.dilation, "dilation"))
        for field in ("n", "c", "h", "w", "k", "r", "s", "groups"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{field} must be an integer, got {value!r}")
            if value <= 0:
                raise ValueError(f"{field} must be positive, got {value}")
        for field, lowest in (("stride", 1), ("dilation", 1), ("padding", 0)):
            for axis, value in zip("hw", getattr(self, field)):
                if value < lowest:
                    raise ValueError(f"{field} along {axis} must be >= {lowest}, got {value}")
        if self.count is not None and (isinstance(self.count, bool) or not isinstance(self.count, int)
                                       or self.count <= 0):
            raise ValueError(f"count must be a positive integer, got {self.count!r}")
        if not isinstance(self.name, str) or '"' in self.name:
            raise ValueError(f"name must be a string without double quotes, got {self.name!r}")
        for field in ("c", "k"):
            if getattr(self, field) % self.groups:
                raise ValueError(
                    f"{field}={getattr(self, field)} is not divisible by groups={self.groups}")
        for axis, size, ksize, pad, dil in (("h", self.h, self.r, self.padding[0], self.dilation[0]),
                                            ("w", self.w, self.s, self.padding[1], self.dilation[1])):
            extent = (ksize - 1) * dil + 1
            if extent > size + 2 * pad:
                raise ValueError(
                    f"filter along {axis} spans {extent} (size {ksize}, dilation {dil}), larger than "
                    f"the padded input {size} + 2*{pad} = {size + 2 * pad}")

    # -- derived sizes ----------------------------------------------------------------------------
    @property
    def p(self) -> int:
        """Output height."""
        extent = (self.r - 1) * self.dilation[0] + 1
        return (self.h + 2 * self.padding[0] - extent) // self.stride[0] + 1

    @property
    def q(self) -> int:
        """Output width."""
        extent = (self.s - 1) * self.dilation[1] + 1
        return (self.w + 2 * self.padding[1] - extent) // self.stride[1] + 1

    @property
    def input_shape(self) -> tuple:
        return (self.n, self.c, self.h, self.w)

    @property
    def weight_shape(self) -> tuple:
        return (self.k, self.c // self.groups, self.r, self.s)

    @property
    def output_shape(self) -> tuple:
        return (self.n, self.k, self.p, self.q)

    @property
    def flops(self) -> int:
        """Multiply-adds of direct convolution times two: 2*N*K*P*Q*(C/groups)*R*S.

        Every algorithm's GFLOP/s is quoted against this count, as benchdnn and cuDNN users do, so an
        algorithm that does less arithmetic (Winograd, FFT) shows an *effective* rate above the machine's.
        """
        return 2 * self.n * self.k * self.p * self.q * self.terms_per_output

    @property
    def terms_per_output(self) -> int:
        """Products summed into each output, (C/groups)*R*S: the depth of its sum."""
        return (self.c // self.groups) * self.r * self.s

    @property
    def params(self) -> int:
        """Learnable parameters of the layer: weights plus one bias per output channel."""
        return self.k * self.terms_per_output + self.k

    def bytes_float32(self) -> int:
        """Memory of input, weights and output in float32."""
        count = (self.n * self.c * self.h * self.w + self.k * (self.c // self.groups) * self.r * self.s
                 + self.n * self.k * self.p * self.q)
        return 4 * count

    def with_mb(self, n: int) -> "ConvProblem":
        """The same layer at another batch size."""
        return dataclasses.replace(self, n=n)

    # -- descriptor ---------------------------------------------------------------------------------
    def __str__(self) -> str:
        return self.descriptor

    @property
    def descriptor(self) -> str:
        """Canonical, shortest benchdnn-compatible form; ``parse(p.descriptor) == p``."""
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        parts = []
        if self.groups != 1:
            parts.append(f"g{self.groups}")
        parts.append(f"mb{self.n}ic{self.c}ih{self.h}")
        if self.w != self.h:
            parts.append(f"iw{self.w}")
        parts.append(f"oc{self.k}oh{self.p}")
        if self.q != self.p or self.w != self.h:
            parts.append(f"ow{self.q}")
        parts.append(f"kh{self.r}")
        if self.s != self.r:
            parts.append(f"kw{self.s}")
        if sh != 1 or sw != 1:
            parts.append(f"sh{sh}")
            if sw != sh:
                parts.append(f"sw{sw}")
        if ph != 0 or pw != 0:
            parts.append(f"ph{ph}")
            if pw != ph:
                parts.append(f"pw{pw}")
        if dh != 1 or dw != 1:
            parts.append(f"dh{dh - 1}")
            if dw != dh:
                parts.append(f"dw{dw - 1}")
        if self.name:
            parts.append(f'n"{self.name}"')
        return "".join(parts)

    @classmethod
    def parse(cls, text: str) -> "ConvProblem":
        """Parse a benchdnn-style descriptor.

        Raises
        ------
        ValueError
            Naming the key and value: unknown or repeated key, missing required key, non-positive
            size, filter larger than the padded input, channels not divisible by groups, or a given
            output size that differs from the computed one.
        """
        if not isinstance(text, str):
            raise ValueError(f"descriptor must be a string, got {type(text).__name__}")
        body = text.strip()
        if not body:
            raise ValueError("empty descriptor")
        name = ""
        match = _NAME.search(body)
        if match:
            name = match.group(1) if match.group(1) is not None else match.group(2)
            body = body[:match.start()]
        values = {}
        pos = 0
        while pos < len(body):
            token = _TOKEN.match(body, pos)
            if not token:
                raise ValueError(f"cannot read {body[pos:]!r} in descriptor {text!r}: "
                                 f"expected a key such as 'ic' followed by a number")
            key, number = token.group(1), int(token.group(2))
            if key in _THREE_D_KEYS:
                raise ValueError(f"key {key!r} describes a 3-D convolution; convbench is 2-D only")
            if key in _UNSUPPORTED_KEYS:
                raise ValueError(f"key {key!r} (asymmetric padding) is not supported")
            if key not in DESCRIPTOR_KEYS:
                raise ValueError(f"unknown key {key!r} in descriptor {text!r}; "
                                 f"known keys: {', '.join(DESCRIPTOR_KEYS)} and n\"name\"")
            if key in values:
                raise ValueError(f"key {key!r} given twice in descriptor {text!r}")
            values[key] = number
            pos = token.end()
        for key in ("ic", "ih", "oc", "kh"):
            if key not in values:
                raise ValueError(f"descriptor {text!r} lacks the required key {key!r}")
        for key, number in values.items():
            lowest = 0 if key[0] in "pd" else 1
            if number < lowest:
                raise ValueError(f"{key} must be >= {lowest}, got {number} in {text!r}")

        get = values.get
        ih = values["ih"]
        try:
                problem = cls(
                n=get("mb", 2), c=values["ic"], h=ih, w=get("iw", ih), k=values["oc"],
                r=values["kh"], s=get("kw", values["kh"]),
                stride=(get("sh", 1), get("sw", get("sh", 1))),
                padding=(get("ph", 0), get("pw", get("ph", 0))),
                dilation=(get("dh", 0) + 1, get("dw", get("dh", 0)) + 1),
                groups=get("g", 1), name=name)
        except ValueError as error:
            raise ValueError(f"{error} in descriptor {text!r}") from None
        if "oh" in values and values["oh"] != problem.p:
            raise ValueError(f"oh={values['oh']} does not match the computed output height "
                             f"{problem.p} in {text!r}")
        if "ow" in values and values["ow"] != problem.q:
            raise ValueError(f"ow={values['ow']} does not match the computed output width "
                             f"{problem.q} in {text!r}")
        return problem
