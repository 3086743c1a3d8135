/* descriptors.c: the generation of refmalloc's file numbers. A change that
 * may touch one of ours moves it when it begins and again when it ends, and
 * counts as under way in between: a number checked while another thread's
 * dup2 onto it is under way (the check sees our file, the dup2 then swaps
 * it, the mmap maps the program's file) is never taken as still ours. With
 * one move at the start only, that check's generation stayed current after
 * the swap, and a block could map the program's file (fdrace.c, about 1 run
 * in 6 under load). Changes outside our numbers move nothing. */
#include <stdbool.h>

#include "descriptors.h"
#include "unit.h"

int main(void)
{
    descriptors_own(100);
    descriptors_own(102);

    uint64_t g = descriptors_generation();
    CHECK(g != 0 && descriptors_settled(g));

    /* Outside [100, 102]: not ours, nothing moves. */
    bool ours = descriptors_changing(3, 3);
    CHECK(!ours && descriptors_settled(g));
    descriptors_changed(ours);
    CHECK(descriptors_settled(g));

    /* dup2 onto 101 begins: moved and under way. */
    ours = descriptors_changing(101, 101);
    CHECK(ours && !descriptors_settled(g));
    uint64_t checked = descriptors_generation();   /* a check made meanwhile */
    CHECK(!descriptors_settled(checked));           /* under way: not trusted */
    descriptors_changed(ours);                      /* the swap is done */
    CHECK(!descriptors_settled(checked));           /* ...and not trusted after */
    uint64_t after = descriptors_generation();
    CHECK(after != checked && descriptors_settled(after));

    /* Two changes at once: settled only when both ended. */
    bool a = descriptors_changing(100, 100), b = descriptors_changing(0, ~0u);
    descriptors_changed(a);
    CHECK(!descriptors_settled(descriptors_generation()));
    descriptors_changed(b);
    CHECK(descriptors_settled(descriptors_generation()));
    return unit_done("test_descriptors");
}
