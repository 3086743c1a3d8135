// C++ new/delete through libstdc++ reach refmalloc: uninitialized new'd
// memory holds the pattern, aligned new is aligned, std::vector works.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>
#include <dlfcn.h>
#include <malloc.h>

static unsigned char PAT;

#define FAIL(...) do { std::fflush(stdout); std::fprintf(stderr, "FAIL cxx.cpp:%d: ", __LINE__); \
    std::fprintf(stderr, __VA_ARGS__); std::fputc('\n', stderr); std::exit(1); } while (0)

static void opaque(void *p) { __asm__ __volatile__("" : : "r"(p) : "memory"); }

static void check_pat(const void *vp, size_t n, const char *what)
{
    const unsigned char *p = static_cast<const unsigned char *>(vp);
    opaque(const_cast<unsigned char *>(p));
    for (size_t i = 0; i < n; i++)
        if (p[i] != PAT)
            FAIL("%s: byte %zu of %zu is 0x%02x, expected 0x%02x", what, i, n, p[i], PAT);
}

struct alignas(4096) Page { unsigned char b[4096 * 3]; };
struct alignas(64) Line { unsigned char b[200]; };

int main()
{
    const char *e = std::getenv("TEST_PATTERN");
    PAT = (unsigned char)(e ? std::strtoul(e, nullptr, 0) : 0xaa);
    if (!dlsym(RTLD_DEFAULT, "refmalloc_get_stats"))
        FAIL("not running under refmalloc");
    size_t sizes[] = {1, 13, 100, 4096, 100000, 131072, 1u << 20, 40u << 20};
    for (size_t n : sizes) {
        char *c = new char[n];
        check_pat(c, n, "new char[]");
        std::memset(c, 1, n);
        delete[] c;
        void *raw = ::operator new(n);
        check_pat(raw, n, "operator new");
        ::operator delete(raw);
        raw = ::operator new(n, std::nothrow);
        check_pat(raw, n, "operator new nothrow");
        ::operator delete(raw);
    }
    // Default-initialized int array: every byte the pattern.
    int *ints = new int[300000];
    check_pat(ints, sizeof(int) * 300000, "new int[300000]");
    delete[] ints;
    // Aligned new.
    size_t aligns[] = {64, 4096, 2u << 20};
    size_t asz[] = {10, 5000, 300000, 5u << 20};
    for (size_t al : aligns)
        for (size_t n : asz) {
            void *p = ::operator new(n, std::align_val_t(al));
            if (reinterpret_cast<uintptr_t>(p) % al)
                FAIL("operator new(%zu, align %zu) = %p misaligned", n, al, p);
            check_pat(p, n, "aligned operator new");
            std::memset(p, 2, n);
            ::operator delete(p, std::align_val_t(al));
            p = ::operator new[](n, std::align_val_t(al));
            if (reinterpret_cast<uintptr_t>(p) % al)
                FAIL("operator new[](%zu, align %zu) misaligned", n, al);
            check_pat(p, n, "aligned operator new[]");
            ::operator delete[](p, std::align_val_t(al));
        }
    Page *pg = new Page[40];
    if (reinterpret_cast<uintptr_t>(pg) % 4096)
        FAIL("new Page[] misaligned");
    check_pat(pg, sizeof(Page) * 40, "new Page[40]");
    delete[] pg;
    Line *ln = new Line;
    if (reinterpret_cast<uintptr_t>(ln) % 64)
        FAIL("new Line misaligned");
    check_pat(ln, sizeof(Line), "new Line");
    delete ln;
    // std::vector growth through reallocation: content kept.
    std::vector<uint32_t> v;
    for (uint32_t i = 0; i < 2000000; i++)
        v.push_back(i * 2654435761u);
    for (uint32_t i = 0; i < 2000000; i++)
        if (v[i] != i * 2654435761u)
            FAIL("vector element %u wrong", i);
    // reserve leaves uninitialized capacity: the pattern.
    std::vector<unsigned char> w;
    w.reserve(1u << 21);
    check_pat(w.data(), 1u << 21, "vector reserve");
    std::string s;
    for (int i = 0; i < 100000; i++)
        s += static_cast<char>('a' + i % 26);
    for (int i = 0; i < 100000; i++)
        if (s[i] != static_cast<char>('a' + i % 26))
            FAIL("string content");
    std::printf("OK cxx vector=%zu string=%zu\n", v.size(), s.size());
    return 0;
}
