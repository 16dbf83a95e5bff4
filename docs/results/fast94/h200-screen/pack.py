"""How CIFAR-10 travelled to the H200 (a call carries at most 64 MiB): each image's rows as differences of
neighbouring pixels (uint8, wrapping), xz -6 (123.6 MB), split in three parts, one call each; undelta.py undid it
there and printed the pixel arrays' sha256, equal to the shared file's (data.txt).

    python3 pack.py && xz -T2 -6 -k /tmp/cifar_delta.npz && split -n 3 -d /tmp/cifar_delta.npz.xz part
"""

import hashlib

import numpy as np

d = np.load("../shared/data/cifar10/cifar10.npz")
out = {}
for k in d.files:
    a = d[k]
    if k.startswith("x_"):
        print(k, hashlib.sha256(a.tobytes()).hexdigest())
        a = np.diff(a, axis=2, prepend=np.zeros_like(a[:, :, :1])).astype(np.uint8)
    out[k] = a
np.savez("/tmp/cifar_delta.npz", **out)
