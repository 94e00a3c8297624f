#!/usr/bin/env python3
"""Host-emulation copies of ops/cuda: every file of SOURCE_DIR is written to OUTPUT_DIR (.cu as .cpp)
with the CUDA-only syntax rewritten for include/emu_cuda.h:

  kernel<<<grid, block, shared, stream>>>(args)  →  ::emu::make_launch(...)(lambda, args)
  extern __shared__ T name[];                     →  a per-block buffer filled with NaN bytes
  __shared__ T name[...];                         →  the block's own array, filled with NaN bytes

and the caching allocator's copy instrumented so that reused blocks start as NaN (like stale device
memory), a block freed or handed out again while an NCCL transfer still uses it is reported, and, under
AddressSanitizer, bytes past a request and freed blocks are poisoned.

usage: rewrite_cuda_sources.py SOURCE_DIR OUTPUT_DIR
"""
import glob
import os
import re
import sys

if len(sys.argv) != 3:
    sys.exit(__doc__)
SRC, DST = sys.argv[1], sys.argv[2]
os.makedirs(DST, exist_ok=True)


def template_kernels(s):
    names = set()
    for m in re.finditer(r'template\s*<[^{;]*?>\s*__global__\s+(?:__launch_bounds__\([^)]*\)\s+)?void\s+(\w+)', s):
        names.add(m.group(1))
    return names

def balanced(s, i, open_c, close_c):
    # s[i] == open_c; returns index after the matching close
    depth = 0
    while True:
        if s[i] == open_c: depth += 1
        elif s[i] == close_c:
            depth -= 1
            if depth == 0: return i + 1
        i += 1

def rewrite_launches(s):
    templates = template_kernels(s)
    out = []; i = 0
    while True:
        j = s.find('<<<', i)
        if j < 0: out.append(s[i:]); break
        k = j - 1
        while s[k].isspace(): k -= 1
        end_kernel = k + 1
        explicit = False
        if s[k] == '>':
            explicit = True
            depth = 0
            while True:
                if s[k] == '>': depth += 1
                elif s[k] == '<': depth -= 1
                k -= 1
                if depth == 0: break
        while s[k].isalnum() or s[k] in '_:': k -= 1
        start_kernel = k + 1
        kernel = s[start_kernel:end_kernel]
        base = re.sub(r'\s*<.*', '', kernel, flags=re.S)
        e = s.find('>>>', j)
        config = s[j+3:e]
        p = e + 3
        while s[p].isspace(): p += 1
        assert s[p] == '(', s[j-80:p+20]
        q = balanced(s, p, '(', ')')
        args = s[p+1:q-1]
        kid = 'nullptr' if (base in templates and not explicit) else '::emu::kernel_id(' + kernel + ')'
        out.append(s[i:start_kernel])
        out.append('::emu::make_launch("%s", %s, %s)([=](auto... emu_a) { %s(emu_a...); }%s)' % (
            base, kid, config, kernel, (', ' + args) if args.strip() else ''))
        i = q
    return ''.join(out)

def transform(s):
    s = re.sub(r'extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?([^;\[]+?)\s+(\w+)\s*\[\s*\]\s*;',
               r'\1* const \2 = reinterpret_cast<\1*>(::emu::dyn_shared());', s)
    # The key (a static's address) tells declarations apart; each block gets its own array (static_shared).
    s = re.sub(r'(?<![\w"])__shared__\s+([^;()]+?)\s+(\w+)((?:\s*\[[^\]]*\])*)\s*;',
               r'static const char \2_emu_key = 0; auto& \2 = ::emu::static_shared<\1\3>(&\2_emu_key);', s)
    s = rewrite_launches(s)
    # Unrolling hints mean nothing to the host compiler (which warns about them).
    s = re.sub(r'^[ \t]*#pragma unroll.*$', '', s, flags=re.M)
    return s

for path in glob.glob(SRC + '/*'):
    name = os.path.basename(path)
    if not re.search(r'\.(cu|cuh|h|cpp)$', name): continue
    s = open(path).read()
    if name.endswith(('.cu', '.cuh')): s = transform(s)
    out = name[:-3] + '.cpp' if name.endswith('.cu') else name
    open(os.path.join(DST, out), 'w').write(s)

# Instrument the emulation copy of the caching allocator: a (re)used block is filled with 0xFF (NaN) like
# stale device memory (a write, so a block that a transfer still reads is reported), a block given back
# while a transfer still uses it is reported (its tensor was freed too early), and under ASan the bytes
# past the request and freed blocks are poisoned.
p = os.path.join(DST, 'caching_allocator.cpp')
if not os.path.exists(p):
    sys.exit(0)  # a folder without the allocator (the race check's kernels)
s = open(p).read()
s = s.replace('#include "ops/cuda/runtime.h"\n', '''#include "ops/cuda/runtime.h"
#include <cstring>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#define EMU_POISON(p, n) __asan_poison_memory_region(p, n)
#define EMU_UNPOISON(p, n) __asan_unpoison_memory_region(p, n)
#else
#define EMU_POISON(p, n) ((void)0)
#define EMU_UNPOISON(p, n) ((void)0)
#endif
''', 1)
s = s.replace('''  live_blocks_.emplace(ptr, block_size);
  stats_.allocated_bytes += block_size;''', '''  live_blocks_.emplace(ptr, block_size);
  EMU_UNPOISON(ptr, block_size);
  std::memset(ptr, 0xFF, block_size);
  emu::check_reads_in_flight("the caching allocator, handing out again a block whose tensor was freed,", nullptr,
                             ptr, block_size);
  EMU_POISON(static_cast<char*>(ptr) + nbytes, block_size - nbytes);
  stats_.allocated_bytes += block_size;''', 1)
s = s.replace('''  free_blocks_.emplace(block_size, ptr);
  cached_bytes_ += block_size;''', '''  free_blocks_.emplace(block_size, ptr);
  emu::check_freed_block(ptr, block_size);
  EMU_POISON(ptr, block_size);
  cached_bytes_ += block_size;''', 1)
s = s.replace('''    cached_bytes_ -= size;
    MERIDIAN_CUDA_CHECK(cudaFree(block));''', '''    cached_bytes_ -= size;
    EMU_UNPOISON(block, size);
    MERIDIAN_CUDA_CHECK(cudaFree(block));''', 1)
if s.count('EMU_') < 8 or 'check_freed_block' not in s:
    sys.exit('rewrite_cuda_sources.py: ops/cuda/caching_allocator.cpp changed; update the instrumentation patterns')
open(p, 'w').write(s)
