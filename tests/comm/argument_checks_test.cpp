// Wrong calls fail at the call, with a message naming the operation and group, before any rank
// communicates (so a wrong call cannot desynchronise the group).
#include <gtest/gtest.h>

#include "launcher/testing/mpi_test_environment.h"

namespace meridian::testing {
namespace {

using comm::ReduceOp;

void expect_error_containing(const std::function<void()>& call, const std::string& text) {
  try {
    call();
    ADD_FAILURE() << "expected an error containing \"" << text << "\"";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(text), std::string::npos) << error.what();
  }
}

TEST(ArgumentChecks, NonContiguousTensorsAreRejected) {
  Tensor matrix = Tensor::zeros({4, 4});
  Tensor column = matrix.narrow(1, 0, 1);
  expect_error_containing([&] { world().all_reduce(column, ReduceOp::sum); },
                          "all_reduce on group world: tensor must be contiguous");
}

TEST(ArgumentChecks, ChunkSizesMustMatchTheGroup) {
  Tensor input = Tensor::zeros({world().size() * 3 + 1});
  Tensor output = Tensor::zeros({3});
  expect_error_containing([&] { world().reduce_scatter(input, output, ReduceOp::sum); },
                          "reduce_scatter on group world: input has");
  Tensor gathered = Tensor::zeros({world().size() * 2 + 1});
  Tensor piece = Tensor::zeros({2});
  expect_error_containing([&] { world().all_gather(piece, gathered); },
                          "all_gather on group world: output has");
}

TEST(ArgumentChecks, DtypesAndOpsMustFit) {
  Tensor ints = Tensor::zeros({4}, DType::i32);
  expect_error_containing([&] { world().all_reduce(ints, ReduceOp::avg); },
                          "avg needs a floating dtype");
  Tensor tokens = Tensor::zeros({4}, DType::u16);
  expect_error_containing([&] { world().all_reduce(tokens, ReduceOp::sum); }, "cannot reduce");
  Tensor input = Tensor::zeros({world().size() * 2});
  Tensor output = Tensor::zeros({2}, DType::bf16);
  expect_error_containing([&] { world().reduce_scatter(input, output, ReduceOp::sum); },
                          "input is f32 but output is bf16");
}

TEST(ArgumentChecks, RootMustBeInTheGroup) {
  Tensor tensor = Tensor::zeros({2});
  expect_error_containing([&] { world().broadcast(tensor, world().size()); }, "root");
}

TEST(ArgumentChecks, OverlappingBuffersOnlyInTheInPlaceLayout) {
  MERIDIAN_REQUIRE_WORLD_SIZE_AT_LEAST(2);
  Tensor buffer = Tensor::zeros({world().size() * 4});
  // Chunk of the wrong rank: overlaps, but is not this rank's chunk.
  Tensor wrong_chunk = buffer.narrow(0, ((world().rank() + 1) % world().size()) * 4, 4);
  expect_error_containing([&] { world().all_gather(wrong_chunk, buffer); }, "overlap");
}

TEST(ArgumentChecks, CudaTensorsAreNotForTheMpiBackend) {
  // A tensor that claims to be on a GPU (memory never touched): the MPI backend must refuse it.
  auto storage = std::make_shared<Storage>(nullptr, 16, Device::cuda(0), nullptr);
  Tensor on_gpu = Tensor::from_storage(storage, {4}, DType::f32);
  expect_error_containing([&] { world().all_reduce(on_gpu, ReduceOp::sum); },
                          "is on cuda:0 but this communicator works on cpu");
}

}  // namespace
}  // namespace meridian::testing
