// Host emulation of NCCL over MPI (include/nccl.h says what it models). The ranks of an emulated job
// are MPI processes with emulated GPUs, whose memory is host memory: a collective runs as the MPI
// collective on the same pointers. Like NCCL's, the operations are asynchronous: the arguments are
// checked when called, the transfer runs on the stream's emulated queue (emu::enqueue), and events
// recorded on that stream complete when it is done. A failure there shows in ncclCommGetAsyncError.
//
// Bootstrap: ncclGetUniqueId writes the caller's world rank and a serial number into the id. In
// ncclCommInitRank every member sends (its NCCL rank, its world rank) to that world rank, which
// answers with the whole table; the members then build their communicator with
// MPI_Comm_create_group, which involves only them (NCCL's init, too, involves only the members). So the
// rank that made the id must be a member, as in Meridian's bootstrap (rank 0 of the group makes it).
//
// Reductions: bf16 (and f16 is refused) is widened to fp32, reduced by MPI and rounded back once;
// ncclAvg is the sum divided by the number of ranks. Every rank gets the same bits, as from NCCL.
#include <mpi.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "nccl.h"

struct ncclComm {
  MPI_Comm mpi = MPI_COMM_NULL;
  int rank = 0;
  int size = 0;
  int device = 0;  // the current device at ncclCommInitRank, as NCCL binds it
  std::atomic<int> pending{0};             // operations queued and not yet done
  std::atomic<int> async_error{ncclSuccess};  // the first failure of a queued operation
};

namespace {

constexpr char kMagic[] = "meridian-emulated-nccl";
constexpr int kBootstrapTagBase = 0x4e43;  // tags on MPI_COMM_WORLD, which Meridian never uses for messages

struct IdContents {
  char magic[sizeof(kMagic)];
  int root_world_rank;
  int serial;
};
static_assert(sizeof(IdContents) <= NCCL_UNIQUE_ID_BYTES);

thread_local std::string g_last_error;

ncclResult_t failure(ncclResult_t result, const std::string& what) {
  g_last_error = "emulated NCCL: " + what;
  std::fprintf(stderr, "EMU NCCL: %s\n", what.c_str());
  return result;
}

int world_rank() {
  int rank = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

size_t element_bytes(ncclDataType_t type) {
  switch (type) {
    case ncclInt8:
    case ncclUint8: return 1;
    case ncclFloat16:
    case ncclBfloat16: return 2;
    case ncclInt32:
    case ncclUint32:
    case ncclFloat32: return 4;
    case ncclInt64:
    case ncclUint64:
    case ncclFloat64: return 8;
  }
  return 0;
}

// A real GPU would fault on host memory, on a range past its allocation or on another GPU's memory.
ncclResult_t check_buffer(const void* p, size_t count, ncclDataType_t type, ncclComm_t comm, const char* call,
                          const char* which) {
  const size_t bytes = count * element_bytes(type);
  if (bytes == 0) return ncclSuccess;
  if (!emu::device_range_ok(p, bytes))
    return failure(ncclInvalidArgument, std::string(call) + ": " + which + " (" + std::to_string(bytes) +
                                            " bytes) is not inside one device allocation");
  if (const int owner = emu::device_of(p); owner != comm->device)
    return failure(ncclInvalidArgument, std::string(call) + ": " + which + " is memory of device " +
                                            std::to_string(owner) + ", the communicator's device is " +
                                            std::to_string(comm->device));
  return ncclSuccess;
}

ncclResult_t check_mpi(int status, const char* call) {
  if (status == MPI_SUCCESS) return ncclSuccess;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, text, &length);
  return failure(ncclSystemError, std::string(call) + " failed: " + std::string(text, length));
}

// The queues' threads make their MPI calls one at a time, and never block inside MPI: an operation is
// started and then polled with MPI_Testall, each call under one lock. Open MPI's progress engine lets a
// thread inside MPI finish any thread's request, copying bytes into the other's buffer; the owner learns
// of it through Open MPI's own atomics, which ThreadSanitizer cannot see (the race check would report a
// race between a transfer of one stream and the kernels after another stream's). Under the lock, the
// copy happens inside some locked call and the owner sees its request done in a later one. Polling, not
// a blocking call under the lock: two ranks' threads may wait for each other's transfers in any order.
std::mutex g_mpi_calls;

// Runs an operation of `count` requests to completion; `start(requests)` posts them and returns MPI's status.
template <class Start>
ncclResult_t run_mpi(const char* call, size_t count, Start start) {
  std::vector<MPI_Request> requests(count, MPI_REQUEST_NULL);
  {
    std::lock_guard<std::mutex> lock(g_mpi_calls);
    if (auto r = check_mpi(start(requests.data()), call); r != ncclSuccess) return r;
  }
  for (;;) {
    int done = 0;
    {
      std::lock_guard<std::mutex> lock(g_mpi_calls);
      const int status = MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
      if (auto r = check_mpi(status, call); r != ncclSuccess) return r;
    }
    if (done) return ncclSuccess;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

float bf16_to_float(uint16_t bits) {
  const uint32_t widened = uint32_t{bits} << 16;
  float value;
  std::memcpy(&value, &widened, sizeof value);
  return value;
}

uint16_t float_to_bf16(float value) {  // round to nearest even, as __float2bfloat16_rn
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// The MPI type and op of a reduction in `type` (bf16 travels as fp32), or an error for what is not modelled.
ncclResult_t reduction_of(ncclDataType_t type, ncclRedOp_t op, MPI_Datatype* mpi_type, MPI_Op* mpi_op) {
  switch (type) {
    case ncclFloat32:
    case ncclBfloat16: *mpi_type = MPI_FLOAT; break;
    case ncclFloat64: *mpi_type = MPI_DOUBLE; break;
    case ncclInt32: *mpi_type = MPI_INT32_T; break;
    case ncclInt64: *mpi_type = MPI_INT64_T; break;
    default: return failure(ncclInvalidArgument, "reductions of data type " + std::to_string(type) + " are not modelled");
  }
  switch (op) {
    case ncclSum:
    case ncclAvg: *mpi_op = MPI_SUM; return ncclSuccess;
    case ncclMax: *mpi_op = MPI_MAX; return ncclSuccess;
    case ncclMin: *mpi_op = MPI_MIN; return ncclSuccess;
    case ncclProd: *mpi_op = MPI_PROD; return ncclSuccess;
  }
  return failure(ncclInvalidArgument, "unknown reduction op " + std::to_string(op));
}

// Values of `type` widened to the reduction's MPI type (a copy for bf16, the bytes themselves otherwise).
struct Widened {
  std::vector<float> floats;
  void* data;
};

Widened widen(const void* p, size_t count, ncclDataType_t type) {
  if (type != ncclBfloat16) return {{}, const_cast<void*>(p)};
  Widened w{std::vector<float>(count), nullptr};
  const auto* bits = static_cast<const uint16_t*>(p);
  for (size_t i = 0; i < count; ++i) w.floats[i] = bf16_to_float(bits[i]);
  w.data = w.floats.data();
  return w;
}

// Writes the reduced values (in the MPI type, at `reduced`) to `out` in `type`, dividing by `ranks` for ncclAvg.
void narrow(void* out, void* reduced, size_t count, ncclDataType_t type, ncclRedOp_t op, int ranks) {
  if (op == ncclAvg) {
    if (type == ncclFloat32 || type == ncclBfloat16) {
      auto* values = static_cast<float*>(reduced);
      for (size_t i = 0; i < count; ++i) values[i] /= static_cast<float>(ranks);
    } else if (type == ncclFloat64) {
      auto* values = static_cast<double*>(reduced);
      for (size_t i = 0; i < count; ++i) values[i] /= ranks;
    } else if (type == ncclInt32) {
      auto* values = static_cast<int32_t*>(reduced);
      for (size_t i = 0; i < count; ++i) values[i] /= ranks;
    } else {
      auto* values = static_cast<int64_t*>(reduced);
      for (size_t i = 0; i < count; ++i) values[i] /= ranks;
    }
  }
  if (type == ncclBfloat16) {
    const auto* values = static_cast<const float*>(reduced);
    auto* bits = static_cast<uint16_t*>(out);
    for (size_t i = 0; i < count; ++i) bits[i] = float_to_bf16(values[i]);
  } else if (out != reduced) {
    std::memmove(out, reduced, count * element_bytes(type));
  }
}

ncclResult_t check_comm(ncclComm_t comm, const char* call) {
  if (comm == nullptr || comm->mpi == MPI_COMM_NULL) return failure(ncclInvalidArgument, std::string(call) + ": no communicator");
  return ncclSuccess;
}

struct Region {
  const void* data;
  size_t bytes;
};

// The parts of `read` outside every region of `written`: an in-place operation's input less its output.
std::vector<Region> outside(Region read, const std::vector<Region>& written) {
  std::vector<Region> parts{read};
  for (const Region& w : written) {
    const auto* w0 = static_cast<const char*>(w.data);
    const char* w1 = w0 + w.bytes;
    std::vector<Region> rest;
    for (const Region& part : parts) {
      const auto* p0 = static_cast<const char*>(part.data);
      const char* p1 = p0 + part.bytes;
      if (w1 <= p0 || p1 <= w0) {
        rest.push_back(part);
        continue;
      }
      if (p0 < w0) rest.push_back({p0, static_cast<size_t>(w0 - p0)});
      if (w1 < p1) rest.push_back({w1, static_cast<size_t>(p1 - w1)});
    }
    parts.swap(rest);
  }
  return parts;
}

// Runs `transfer` (which returns a status) on `stream`'s queue for `comm`; until it has, the memory it
// writes is in flight (emu::begin_in_flight), and the memory it only reads too (emu::begin_read_in_flight).
template <class Transfer>
ncclResult_t enqueue(ncclComm_t comm, cudaStream_t stream, const char* call, std::vector<Region> writes,
                     const std::vector<Region>& reads, Transfer transfer) {
  comm->pending.fetch_add(1);
  std::vector<uint64_t> in_flight, read_in_flight;
  for (const Region& w : writes)
    if (w.bytes > 0) in_flight.push_back(emu::begin_in_flight(w.data, w.bytes, call));
  for (const Region& read : reads)
    for (const Region& r : outside(read, writes))
      if (r.bytes > 0) read_in_flight.push_back(emu::begin_read_in_flight(r.data, r.bytes, call));
  emu::enqueue(stream, [comm, transfer, in_flight, read_in_flight]() mutable {
    for (uint64_t id : read_in_flight) emu::arm_read_in_flight(id);
    const ncclResult_t result = transfer();
    for (uint64_t id : in_flight) emu::end_in_flight(id);
    for (uint64_t id : read_in_flight) emu::end_read_in_flight(id);
    if (result != ncclSuccess) {
      int expected = ncclSuccess;
      comm->async_error.compare_exchange_strong(expected, result);
    }
    comm->pending.fetch_sub(1);
  });
  return ncclSuccess;
}

// Sends and receives between ncclGroupStart and ncclGroupEnd; they start together at the end.
struct PeerTransfer {
  bool send;
  void* data;
  int count;
  int peer;
  ncclComm_t comm;
  cudaStream_t stream;
};
thread_local int g_group_depth = 0;
thread_local std::vector<PeerTransfer> g_group;

ncclResult_t run_transfers(const std::vector<PeerTransfer>& transfers) {
  return run_mpi("MPI_Irecv/MPI_Isend", transfers.size(), [&](MPI_Request* requests) {
    // Receives first, so that every send finds its receive posted.
    for (int pass = 0; pass < 2; ++pass)
      for (size_t i = 0; i < transfers.size(); ++i) {
        const PeerTransfer& t = transfers[i];
        if (t.send != (pass == 1)) continue;
        const int status = t.send ? MPI_Isend(t.data, t.count, MPI_BYTE, t.peer, 0, t.comm->mpi, &requests[i])
                                  : MPI_Irecv(t.data, t.count, MPI_BYTE, t.peer, 0, t.comm->mpi, &requests[i]);
        if (status != MPI_SUCCESS) return status;
      }
    return MPI_SUCCESS;
  });
}

ncclResult_t peer_transfer(bool send, const void* data, size_t count, ncclDataType_t type, int peer, ncclComm_t comm,
                           cudaStream_t stream, const char* call) {
  if (auto r = check_comm(comm, call); r != ncclSuccess) return r;
  if (auto r = check_buffer(data, count, type, comm, call, "buffer"); r != ncclSuccess) return r;
  if (peer < 0 || peer >= comm->size || peer == comm->rank)
    return failure(ncclInvalidArgument, std::string(call) + ": peer " + std::to_string(peer) + " of " +
                                            std::to_string(comm->size) + " ranks (this is rank " +
                                            std::to_string(comm->rank) + ")");
  const size_t bytes = count * element_bytes(type);
  if (bytes > static_cast<size_t>(INT32_MAX)) return failure(ncclInvalidArgument, std::string(call) + ": over 2 GiB");
  const PeerTransfer transfer{send, const_cast<void*>(data), static_cast<int>(bytes), peer, comm, stream};
  if (g_group_depth > 0) {
    g_group.push_back(transfer);
    return ncclSuccess;
  }
  const std::vector<Region> written{{data, send ? 0 : bytes}}, read{{data, send ? bytes : 0}};
  return enqueue(comm, stream, call, written, read, [transfer] { return run_transfers({transfer}); });
}

// Collectives run when called; inside a group they could wait for a send of the same group.
ncclResult_t check_not_grouped(const char* call) {
  if (g_group_depth == 0) return ncclSuccess;
  return failure(ncclInvalidUsage, std::string(call) + " inside ncclGroupStart/End is not modelled");
}

int to_int_count(size_t count) { return static_cast<int>(count); }

ncclResult_t check_collective(ncclComm_t comm, const char* call) {
  if (auto r = check_comm(comm, call); r != ncclSuccess) return r;
  return check_not_grouped(call);
}

}  // namespace

const char* ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error";
    case ncclSystemError: return "unhandled system error";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    case ncclNumResults: break;
  }
  return "unknown result code";
}

const char* ncclGetLastError(ncclComm_t) { return g_last_error.c_str(); }

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  static std::mutex mutex;
  static int serial = 0;
  IdContents contents{};
  std::memcpy(contents.magic, kMagic, sizeof(kMagic));
  contents.root_world_rank = world_rank();
  {
    std::lock_guard<std::mutex> lock(mutex);
    contents.serial = serial++;
  }
  std::memset(id->internal, 0, sizeof(id->internal));
  std::memcpy(id->internal, &contents, sizeof(contents));
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  IdContents contents;
  std::memcpy(&contents, id.internal, sizeof(contents));
  if (std::memcmp(contents.magic, kMagic, sizeof(kMagic)) != 0)
    return failure(ncclInvalidArgument, "ncclCommInitRank: the id was not made by ncclGetUniqueId");
  if (nranks < 1 || rank < 0 || rank >= nranks)
    return failure(ncclInvalidArgument, "ncclCommInitRank: rank " + std::to_string(rank) + " of " + std::to_string(nranks));
  const int tag = kBootstrapTagBase + 2 * (contents.serial % 4096);  // and tag + 1 for the answer
  const int me = world_rank();
  const int mine[2] = {rank, me};
  MPI_Request sent = MPI_REQUEST_NULL;
  if (auto r = check_mpi(MPI_Isend(mine, 2, MPI_INT, contents.root_world_rank, tag, MPI_COMM_WORLD, &sent), "MPI_Isend");
      r != ncclSuccess)
    return r;
  std::vector<int> members(nranks, -1);  // world rank of each NCCL rank
  if (me == contents.root_world_rank) {
    for (int i = 0; i < nranks; ++i) {
      int member[2];
      if (auto r = check_mpi(MPI_Recv(member, 2, MPI_INT, MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
                             "MPI_Recv");
          r != ncclSuccess)
        return r;
      if (member[0] < 0 || member[0] >= nranks || members[member[0]] != -1)
        return failure(ncclInvalidUsage, "ncclCommInitRank: rank " + std::to_string(member[0]) + " joined twice");
      members[member[0]] = member[1];
    }
    for (int world : members)
      if (auto r = check_mpi(MPI_Send(members.data(), nranks, MPI_INT, world, tag + 1, MPI_COMM_WORLD), "MPI_Send");
          r != ncclSuccess)
        return r;
  }
  if (auto r = check_mpi(MPI_Recv(members.data(), nranks, MPI_INT, contents.root_world_rank, tag + 1, MPI_COMM_WORLD,
                                  MPI_STATUS_IGNORE),
                         "MPI_Recv");
      r != ncclSuccess)
    return r;
  if (auto r = check_mpi(MPI_Wait(&sent, MPI_STATUS_IGNORE), "MPI_Wait"); r != ncclSuccess) return r;

  MPI_Group world_group = MPI_GROUP_NULL, group = MPI_GROUP_NULL;
  MPI_Comm_group(MPI_COMM_WORLD, &world_group);
  MPI_Group_incl(world_group, nranks, members.data(), &group);
  auto* created = new ncclComm{};
  const int status = MPI_Comm_create_group(MPI_COMM_WORLD, group, tag, &created->mpi);
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  if (auto r = check_mpi(status, "MPI_Comm_create_group"); r != ncclSuccess) {
    delete created;
    return r;
  }
  MPI_Comm_set_errhandler(created->mpi, MPI_ERRORS_RETURN);
  created->rank = rank;
  created->device = emu::current_device();
  created->size = nranks;
  *comm = created;
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (comm == nullptr) return ncclSuccess;
  while (comm->pending.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const int status = MPI_Comm_free(&comm->mpi);
  delete comm;
  return check_mpi(status, "MPI_Comm_free");
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error) {
  if (auto r = check_comm(comm, "ncclCommGetAsyncError"); r != ncclSuccess) return r;
  *async_error = static_cast<ncclResult_t>(comm->async_error.load());
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
  constexpr const char* call = "ncclAllReduce";
  if (auto r = check_collective(comm, call); r != ncclSuccess) return r;
  if (auto r = check_buffer(sendbuff, count, datatype, comm, call, "sendbuff"); r != ncclSuccess) return r;
  if (auto r = check_buffer(recvbuff, count, datatype, comm, call, "recvbuff"); r != ncclSuccess) return r;
  MPI_Datatype type;
  MPI_Op mpi_op;
  if (auto r = reduction_of(datatype, op, &type, &mpi_op); r != ncclSuccess) return r;
  if (count == 0) return ncclSuccess;
  const size_t bytes = count * element_bytes(datatype);
  return enqueue(comm, stream, call, {{recvbuff, bytes}}, {{sendbuff, bytes}}, [=] {
    Widened in = widen(sendbuff, count, datatype);
    std::vector<float> reduced_floats(datatype == ncclBfloat16 ? count : 0);
    void* reduced = datatype == ncclBfloat16 ? static_cast<void*>(reduced_floats.data()) : recvbuff;
    const void* source = in.data == reduced ? MPI_IN_PLACE : in.data;
    if (auto r = run_mpi("MPI_Iallreduce", 1,
                         [&](MPI_Request* request) {
                           return MPI_Iallreduce(source, reduced, to_int_count(count), type, mpi_op, comm->mpi,
                                                 request);
                         });
        r != ncclSuccess)
      return r;
    narrow(recvbuff, reduced, count, datatype, op, comm->size);
    return ncclSuccess;
  });
}

ncclResult_t ncclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount, ncclDataType_t datatype,
                               ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
  constexpr const char* call = "ncclReduceScatter";
  if (auto r = check_collective(comm, call); r != ncclSuccess) return r;
  const size_t total = recvcount * static_cast<size_t>(comm->size);
  if (auto r = check_buffer(sendbuff, total, datatype, comm, call, "sendbuff"); r != ncclSuccess) return r;
  if (auto r = check_buffer(recvbuff, recvcount, datatype, comm, call, "recvbuff"); r != ncclSuccess) return r;
  MPI_Datatype type;
  MPI_Op mpi_op;
  if (auto r = reduction_of(datatype, op, &type, &mpi_op); r != ncclSuccess) return r;
  if (recvcount == 0) return ncclSuccess;
  const size_t bytes = total * element_bytes(datatype);
  return enqueue(comm, stream, call, {{recvbuff, recvcount * element_bytes(datatype)}}, {{sendbuff, bytes}}, [=] {
    // NCCL allows recvbuff inside sendbuff (in place); MPI does not: reduce from a copy.
    std::vector<unsigned char> copy(static_cast<const unsigned char*>(sendbuff),
                                    static_cast<const unsigned char*>(sendbuff) + bytes);
    Widened in = widen(copy.data(), total, datatype);
    std::vector<unsigned char> reduced(recvcount *
                                       (datatype == ncclBfloat16 ? sizeof(float) : element_bytes(datatype)));
    if (auto r = run_mpi("MPI_Ireduce_scatter_block", 1,
                         [&](MPI_Request* request) {
                           return MPI_Ireduce_scatter_block(in.data, reduced.data(), to_int_count(recvcount), type,
                                                            mpi_op, comm->mpi, request);
                         });
        r != ncclSuccess)
      return r;
    narrow(recvbuff, reduced.data(), recvcount, datatype, op, comm->size);
    return ncclSuccess;
  });
}

ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, ncclDataType_t datatype,
                           ncclComm_t comm, cudaStream_t stream) {
  constexpr const char* call = "ncclAllGather";
  if (auto r = check_collective(comm, call); r != ncclSuccess) return r;
  if (auto r = check_buffer(sendbuff, sendcount, datatype, comm, call, "sendbuff"); r != ncclSuccess) return r;
  if (auto r = check_buffer(recvbuff, sendcount * comm->size, datatype, comm, call, "recvbuff"); r != ncclSuccess) return r;
  const size_t bytes = sendcount * element_bytes(datatype);
  if (bytes == 0) return ncclSuccess;
  return enqueue(comm, stream, call, {{recvbuff, bytes * comm->size}}, {{sendbuff, bytes}}, [=] {
    // sendbuff may lie inside recvbuff (in place), which MPI does not allow: gather from a copy.
    const std::vector<unsigned char> copy(static_cast<const unsigned char*>(sendbuff),
                                          static_cast<const unsigned char*>(sendbuff) + bytes);
    return run_mpi("MPI_Iallgather", 1, [&](MPI_Request* request) {
      return MPI_Iallgather(copy.data(), to_int_count(bytes), MPI_BYTE, recvbuff, to_int_count(bytes), MPI_BYTE,
                            comm->mpi, request);
    });
  });
}

ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream) {
  constexpr const char* call = "ncclBroadcast";
  if (auto r = check_collective(comm, call); r != ncclSuccess) return r;
  if (root < 0 || root >= comm->size)
    return failure(ncclInvalidArgument, std::string(call) + ": root " + std::to_string(root) + " of " +
                                            std::to_string(comm->size) + " ranks");
  if (comm->rank == root)
    if (auto r = check_buffer(sendbuff, count, datatype, comm, call, "sendbuff"); r != ncclSuccess) return r;
  if (auto r = check_buffer(recvbuff, count, datatype, comm, call, "recvbuff"); r != ncclSuccess) return r;
  const size_t bytes = count * element_bytes(datatype);
  if (bytes == 0) return ncclSuccess;
  const std::vector<Region> read{{sendbuff, comm->rank == root ? bytes : 0}};
  return enqueue(comm, stream, call, {{recvbuff, bytes}}, read, [=] {
    if (comm->rank == root && sendbuff != recvbuff) std::memmove(recvbuff, sendbuff, bytes);
    return run_mpi("MPI_Ibcast", 1, [&](MPI_Request* request) {
      return MPI_Ibcast(recvbuff, to_int_count(bytes), MPI_BYTE, root, comm->mpi, request);
    });
  });
}

ncclResult_t ncclSend(const void* sendbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                      cudaStream_t stream) {
  return peer_transfer(true, sendbuff, count, datatype, peer, comm, stream, "ncclSend");
}

ncclResult_t ncclRecv(void* recvbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                      cudaStream_t stream) {
  return peer_transfer(false, recvbuff, count, datatype, peer, comm, stream, "ncclRecv");
}

ncclResult_t ncclGroupStart() {
  ++g_group_depth;
  return ncclSuccess;
}

ncclResult_t ncclGroupEnd() {
  if (g_group_depth == 0) return failure(ncclInvalidUsage, "ncclGroupEnd without ncclGroupStart");
  if (--g_group_depth > 0) return ncclSuccess;
  std::vector<PeerTransfer> transfers;
  transfers.swap(g_group);
  if (transfers.empty()) return ncclSuccess;
  for (const PeerTransfer& t : transfers)
    if (t.stream != transfers[0].stream || t.comm != transfers[0].comm)
      return failure(ncclInvalidUsage, "a group over several communicators or streams is not modelled");
  std::vector<Region> writes, reads;
  for (const PeerTransfer& t : transfers) (t.send ? reads : writes).push_back({t.data, static_cast<size_t>(t.count)});
  const char* call = writes.empty() ? "ncclSend" : reads.empty() ? "ncclRecv" : "ncclSend/ncclRecv";
  return enqueue(transfers[0].comm, transfers[0].stream, call, std::move(writes), reads,
                 [transfers] { return run_transfers(transfers); });
}
