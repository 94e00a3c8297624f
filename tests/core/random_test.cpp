// The counter-based RNG: values depend only on (seed, name, index), and are well distributed.
#include "core/random.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace meridian::random {
namespace {

TEST(Random, PhiloxMatchesThePublishedKnownAnswer) {
  // Random123's known-answer test for philox4x32-10 with all-ones counter and key.
  const auto out = philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu});
  EXPECT_EQ(out[0], 0x408f276du);
  EXPECT_EQ(out[1], 0x41c83b0eu);
  EXPECT_EQ(out[2], 0xa20bc7c6u);
  EXPECT_EQ(out[3], 0x6d5451fdu);
}

TEST(Random, ValuesDependOnlyOnSeedNameAndIndex) {
  const uint64_t key = stream_key(42, "h.0.attn.c_attn.weight");
  EXPECT_EQ(normal(key, 12345), normal(stream_key(42, "h.0.attn.c_attn.weight"), 12345));
  EXPECT_NE(normal(key, 12345), normal(stream_key(43, "h.0.attn.c_attn.weight"), 12345));
  EXPECT_NE(normal(key, 12345), normal(stream_key(42, "h.1.attn.c_attn.weight"), 12345));
  std::vector<float> block(100);
  fill_normal(block.data(), 100, key, 1000, 0.0f, 1.0f);
  EXPECT_EQ(block[7], normal(key, 1007));  // filling a range is the same as asking element by element
}

TEST(Random, NormalAndUniformHaveTheRightMoments) {
  const uint64_t key = stream_key(7, "moments");
  const int n = 200000;
  double sum = 0, sum_sq = 0, uniform_sum = 0;
  for (int i = 0; i < n; ++i) {
    const double z = normal(key, static_cast<uint64_t>(i));
    sum += z;
    sum_sq += z * z;
    const double u = uniform(key, static_cast<uint64_t>(i));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    uniform_sum += u;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sum_sq / n, 1.0, 0.01);
  EXPECT_NEAR(uniform_sum / n, 0.5, 0.005);
}

}  // namespace
}  // namespace meridian::random
