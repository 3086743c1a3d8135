"""numpy arrays initialized before use: zeros, full, empty then filled."""

import numpy as np

a = np.zeros(1 << 16)
b = np.full(1000, 3, dtype=np.int32)
c = np.empty(1 << 17, dtype=np.float64)
c[:] = 2.0
d = {str(i): i for i in range(100)}
print(int(a.sum() + b.sum() + c.sum()), len(d), sorted(d)[:3])
