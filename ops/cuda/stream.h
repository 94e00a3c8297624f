#pragma once
// cudaStream_t, cudaEvent_t and __nv_bfloat16 for headers that plain C++ (core/, tests) includes
// without the CUDA headers. All are exactly the declarations the CUDA headers make (driver_types.h
// declares `typedef struct CUstream_st* cudaStream_t` and `typedef struct CUevent_st* cudaEvent_t`,
// cuda_bf16.h forward-declares `struct __nv_bfloat16`), so a file may include this and the CUDA
// headers in any order.
struct CUstream_st;
using cudaStream_t = CUstream_st*;
struct CUevent_st;
using cudaEvent_t = CUevent_st*;
struct __nv_bfloat16;
