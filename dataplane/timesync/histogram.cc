#include "dataplane/timesync/histogram.h"

#include <algorithm>

namespace lab::timesync {

namespace {

constexpr double kErrorEdges[] = {
    -50000, -20000, -10000, -5000, -2000, -1000, -500, -200, -100,  -50,   -20,  -10, -5,
    -2,     -1,     -0.5,   -0.2,  -0.1,  0,     0.1,  0.2,  0.5,   1,     2,    5,   10,
    20,     50,     100,    200,   500,   1000,  2000, 5000, 10000, 20000, 50000};
constexpr double kRttEdges[] = {1,     2,      5,      10,     20,     50,    100,
                                200,   500,    1000,   2000,   5000,   10000, 20000,
                                50000, 100000, 200000, 500000, 1000000};

}  // namespace

std::span<const double> ErrorEdgesUs() { return kErrorEdges; }
std::span<const double> RttEdgesUs() { return kRttEdges; }

}  // namespace lab::timesync
