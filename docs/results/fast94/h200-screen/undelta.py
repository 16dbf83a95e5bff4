import hashlib, sys
import numpy as np
d = np.load(sys.argv[1])
out = {}
for k in d.files:
    a = d[k]
    if k.startswith("x_"):
        a = np.cumsum(a, axis=2, dtype=np.uint8)
        print(k, a.shape, hashlib.sha256(a.tobytes()).hexdigest())
    out[k] = a
np.savez(sys.argv[2], **out)
