#include "mte.h"

#include "config.h"
#include "os.h"
#include "out.h"

static struct {
    bool on;
    unsigned last;       /* last tag handed out */
} mte;

void mte_start(void)
{
    if (!config()->mte)
        return;
    enum os_mte r = os_mte_start();
    mte.on = r == OS_MTE_ON || r == OS_MTE_PROGRAM_SET;
    if (r == OS_MTE_ABSENT)
#if defined(__aarch64__)
        out_diag("mte=1 refused: this CPU has no Memory Tagging Extension (HWCAP2_MTE); "
                 "large blocks stay untagged", NULL, NULL);
#else
        out_diag("mte=1 refused: memory tagging needs an arm64 CPU with MTE; "
                 "large blocks stay untagged", NULL, NULL);
#endif
    else if (r == OS_MTE_NO_ABI)
        out_diag("mte=1 refused: the kernel has no tagged-address ABI "
                 "(PR_SET_TAGGED_ADDR_CTRL failed); large blocks stay untagged", NULL, NULL);
}

bool mte_on(void)
{
    return mte.on;
}

unsigned mte_pick(unsigned exclude)
{
    /* Tag 0 is what untagged pointers carry. With at most three other
     * exclusions, twelve tags remain. */
    exclude |= 1u;
    unsigned t = mte.last;
    do
        t = (t + 1) % MTE_TAGS;
    while (exclude & (1u << t));
    mte.last = t;
    return t;
}

#if defined(__aarch64__)
/* Only this function needs the MTE instructions; the library as a whole
 * stays armv8.0. */
__attribute__((target("arch=armv8.5-a+memtag")))
void mte_fill(void *p, size_t len, unsigned char fill)
{
    /* STGP stores 16 bytes of data and the granule's tag (from the address)
     * at once: pattern and tag in one pass over the memory. */
    uint64_t word = 0x0101010101010101ull * fill;
    for (char *g = p, *end = g + len; g < end; g += 32)
        __asm__ volatile("stgp %1, %1, [%0]\n\t"
                         "stgp %1, %1, [%0, #16]"
                         : : "r"(g), "r"(word) : "memory");
}

__attribute__((target("arch=armv8.5-a+memtag")))
void mte_set_tags(void *p, size_t len)
{
    char *g = p, *end = g + len;
    if (((uintptr_t)g & 31) && g < end) {
        __asm__ volatile("stg %0, [%0]" : : "r"(g) : "memory");
        g += 16;
    }
    for (; g + 32 <= end; g += 32)
        __asm__ volatile("st2g %0, [%0]" : : "r"(g) : "memory");
    if (g < end)
        __asm__ volatile("stg %0, [%0]" : : "r"(g) : "memory");
}
#else
/* Never called: tagging is never on. */
void mte_fill(void *p, size_t len, unsigned char fill)
{
    (void)p, (void)len, (void)fill;
}

void mte_set_tags(void *p, size_t len)
{
    (void)p, (void)len;
}
#endif
