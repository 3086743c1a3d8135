// C++: new[] and a member the constructor forgets.
#include <cstdio>
#include <memory>

struct Widget {
    int width;
    int height;
    int depth;
    Widget() : width(3), height(4) {} // depth forgotten
};

__attribute__((noinline)) static Widget *make_widget()
{
    return new Widget;
}

int main()
{
    std::unique_ptr<Widget> w(make_widget());
    std::printf("volume %d\n", w->width * w->height * (w->depth & 0xff));
    return 0;
}
