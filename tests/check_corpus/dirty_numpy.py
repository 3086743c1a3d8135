"""numpy.empty: an array used before every element is set."""

import numpy as np

a = np.empty(1 << 16, dtype=np.uint8)  # large: a reference-page block under refmalloc
a[: 1 << 15] = 1
print("sum", int(a.sum()))
