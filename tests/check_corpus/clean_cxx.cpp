// C++ containers: value-initialized vectors, strings, maps.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

int main()
{
    std::vector<int> v(1000);
    std::vector<double> big(1 << 18);
    std::map<std::string, int> m;
    for (int i = 0; i < 100; i++)
        m["key" + std::to_string(i % 17)] += i;
    long sum = 0;
    for (int x : v)
        sum += x;
    for (double d : big)
        sum += static_cast<long>(d);
    for (auto &kv : m)
        sum += kv.second + static_cast<long>(kv.first.size());
    std::printf("sum %ld\n", sum);
    return 0;
}
