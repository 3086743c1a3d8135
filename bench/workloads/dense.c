/* dense: 8 times malloc a 64 MiB block, write it whole (memset), free. */
#include "common.h"

int main(void)
{
    return run_dense("dense", 8, (size_t)64 << 20);
}
