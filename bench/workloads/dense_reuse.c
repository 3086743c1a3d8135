/* dense-reuse: one 4 MiB block malloc'd, written whole, freed; 200 times.
 * Exercises the reuse of freed large blocks (cache) against glibc. */
#include "common.h"

int main(void)
{
    return run_dense("dense-reuse", 200, (size_t)4 << 20);
}
