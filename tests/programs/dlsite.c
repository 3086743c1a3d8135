/* dlsite LIB: dlopen LIB, print the byte dlsite_fresh_byte() read from its
 * fresh block (uninitialized: it shows the site's pattern), dlclose LIB
 * (unmapping it: its file name and symbol strings are gone), then exit
 * normally so that the sites= log is written after the unload. */
#include "common.h"

int main(int argc, char **argv)
{
    if (argc != 2)
        FAIL("usage: dlsite LIB");
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h)
        FAIL("dlopen %s: %s", argv[1], dlerror());
    int (*fresh)(void) = (int (*)(void))dlsym(h, "dlsite_fresh_byte");
    if (!fresh)
        FAIL("dlsym: %s", dlerror());
    int byte = fresh();
    if (byte < 0)
        FAIL("malloc failed in the library");
    if (dlclose(h) != 0)
        FAIL("dlclose: %s", dlerror());
    /* Still mapped? Then the test would prove nothing. */
    if (dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD))
        FAIL("%s is still loaded after dlclose", argv[1]);
    printf("%02x\n", byte);
    return 0;
}
