"""matmul (SPEC.md §4): multiply two unseeded uniform-random n x n float64 matrices (NumPy).

t1 is taken at entry: generating the inputs is part of the process phase, as in the paper.
The result carries checksums of the product. With params `verify` = "1" (tests) it also
carries, computed after t2, A's column sums and B's row sums (sum(C) = sum_k colA[k]*rowB[k])
and, for n <= 64, the matrices themselves, so a test can recompute the product.
"""

import numpy as np

VERIFY_FULL_MAX_N = 64


def handle(params, ctx):
    ctx.t1()
    n = int(params["n"])
    a = np.random.rand(n, n)
    b = np.random.rand(n, n)
    c = np.matmul(a, b)
    ctx.t2()
    result = {"n": n, "shape": list(c.shape), "sum": float(c.sum()), "trace": float(np.trace(c))}
    if str(params.get("verify", "0")) == "1":
        result["a_col_sums"] = a.sum(axis=0).tolist()
        result["b_row_sums"] = b.sum(axis=1).tolist()
        if n <= VERIFY_FULL_MAX_N:
            result["a"] = a.tolist()
            result["b"] = b.tolist()
            result["c"] = c.tolist()
    return result
