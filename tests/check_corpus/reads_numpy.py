"""numpy.empty compared against a bound that every pattern passes: the array is
never written, so the comparison reads uninitialized memory, but its outcome (no
NaN among the doubles 0xaaaa... or 0x5555...) is the same under every pattern."""

import numpy as np

values = np.empty(1 << 17)  # 1 MiB, never written
print("nan" if np.isnan(values).any() else "no nan")
