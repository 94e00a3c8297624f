// Point-to-point transfers on the MPI backend: simultaneous sends in both directions (the classic
// deadlock when sends block), rings, tag matching, and errors.
#include <gtest/gtest.h>

#include "launcher/testing/mpi_test_environment.h"
#include "rank_seeded_data.h"

namespace meridian::testing {
namespace {

using comm::PeerTransfer;

// Big enough for Open MPI's rendezvous protocol: a blocking send of this size waits for the recv.
constexpr int64_t kLargeCount = int64_t{4} << 20;

TEST(PointToPoint, NeighboursSendToEachOtherAtOnce) {
  MERIDIAN_REQUIRE_WORLD_SIZE_AT_LEAST(2);
  const int rank = world().rank();
  if (rank < 2) {
    const int peer = 1 - rank;
    Tensor outgoing = make_seeded(rank, kLargeCount);
    Tensor incoming = Tensor::zeros({kLargeCount});
    // Both ranks send first and receive second, with separate calls.
    auto sent = world().send(outgoing, peer, /*tag=*/5);
    auto received = world().recv(incoming, peer, /*tag=*/5);
    received->wait();
    sent->wait();
    expect_elements(
        incoming, [&](int64_t i) { return seeded_value(peer, i); }, "exchange");
  }
  world().barrier()->wait();
}

TEST(PointToPoint, RingWithSeparateCallsAndWithSendRecv) {
  MERIDIAN_REQUIRE_WORLD_SIZE_AT_LEAST(2);
  const int size = world().size();
  const int rank = world().rank();
  const int next = (rank + 1) % size;
  const int previous = (rank + size - 1) % size;
  for (const int64_t count : {int64_t{0}, int64_t{1}, int64_t{1001}, kLargeCount}) {
    Tensor outgoing = make_seeded(rank, count);
    Tensor from_previous = Tensor::zeros({count});
    auto sent = world().send(outgoing, next, 1);
    world().recv(from_previous, previous, 1)->wait();
    sent->wait();
    expect_elements(
        from_previous, [&](int64_t i) { return seeded_value(previous, i); },
        "ring of separate calls, " + std::to_string(count) + " elements");

    // The other direction, both halves in one call.
    Tensor from_next = Tensor::zeros({count}, DType::bf16);
    world()
        .send_recv({PeerTransfer::send(make_seeded(rank, count, DType::bf16), previous, 2),
                    PeerTransfer::recv(from_next, next, 2)})
        ->wait();
    expect_elements(
        from_next, [&](int64_t i) { return seeded_value(next, i); },
        "reverse ring with send_recv, " + std::to_string(count) + " elements");
  }
}

TEST(PointToPoint, TagsMatchMessagesWhateverTheReceiveOrder) {
  MERIDIAN_REQUIRE_WORLD_SIZE_AT_LEAST(2);
  const int rank = world().rank();
  if (rank == 0) {
    auto first = world().send(Tensor::full({3}, 1.0), 1, /*tag=*/10);
    auto second = world().send(Tensor::full({3}, 2.0), 1, /*tag=*/20);
    first->wait();
    second->wait();
  } else if (rank == 1) {
    Tensor tag_20 = Tensor::zeros({3});
    Tensor tag_10 = Tensor::zeros({3});
    auto later = world().recv(tag_20, 0, 20);  // posted first, matches the second message
    auto earlier = world().recv(tag_10, 0, 10);
    later->wait();
    earlier->wait();
    expect_elements(
        tag_20, [](int64_t) { return 2.0f; }, "tag 20");
    expect_elements(
        tag_10, [](int64_t) { return 1.0f; }, "tag 10");
  }
  world().barrier()->wait();
}

TEST(PointToPoint, ShortMessageFailsTheReceiveWithItsSize) {
  MERIDIAN_REQUIRE_WORLD_SIZE_AT_LEAST(2);
  // A group of its own: a failed operation makes its group unusable, by design.
  auto pair = world().split(world().rank() < 2 ? 0 : -1, world().rank(), "pair");
  if (pair) {
    if (pair->rank() == 0) {
      pair->send(Tensor::full({4}, 1.0), 1, 0)->wait();
    } else {
      Tensor too_big = Tensor::zeros({8});
      auto work = pair->recv(too_big, 0, 0);
      try {
        work->wait();
        ADD_FAILURE() << "a 4-element message into an 8-element recv should fail";
      } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("received 4 elements, expected 8"),
                  std::string::npos)
            << error.what();
      }
      // Later operations on the broken group fail at once instead of hanging.
      Tensor more = Tensor::zeros({1});
      EXPECT_THROW(pair->all_reduce(more, comm::ReduceOp::sum)->wait(), Error);
    }
  } else {
    EXPECT_GE(world().rank(), 2);  // left out by the negative color
  }
  world().barrier()->wait();
}

TEST(PointToPoint, BadPeersAndTagsThrowAtTheCall) {
  Tensor tensor = Tensor::zeros({2});
  EXPECT_THROW(world().send(tensor, world().rank(), 0), Error);  // to itself
  EXPECT_THROW(world().recv(tensor, world().size(), 0), Error);  // no such rank
  EXPECT_THROW(world().send(tensor, (world().rank() + 1) % world().size(), -1), Error);
}

}  // namespace
}  // namespace meridian::testing
