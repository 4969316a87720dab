// Scheduler of the CPU SIMT layer (model in simt.h): fibers for the threads of a block, the
// per-warp / per-block rendezvous, the seeded block order and the concurrent-block workers.
#include "simt.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define SVG_SIM_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define SVG_SIM_TSAN 1
#endif

thread_local uint3 threadIdx{0, 0, 0};
thread_local uint3 blockIdx{0, 0, 0};
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace svg_sim {
namespace {

#if defined(SVG_SIM_ASAN) || defined(SVG_SIM_TSAN)
constexpr size_t kStackBytes = size_t(512) << 10;  // sanitizers grow frames
#else
constexpr size_t kStackBytes = size_t(128) << 10;
#endif
constexpr uint64_t kMaxBlocks = uint64_t(1) << 26;  // a grid the emulator will enumerate

std::mutex g_options_mutex;
Options g_options;

enum class St : unsigned char { kReady, kWarp, kBlock, kDone };

const char* op_name(Op op) {
  switch (op) {
    case Op::kShflIdx: return "__shfl_sync";
    case Op::kShflUp: return "__shfl_up_sync";
    case Op::kShflDown: return "__shfl_down_sync";
    case Op::kShflXor: return "__shfl_xor_sync";
    case Op::kBallot: return "__ballot_sync/__any_sync/__all_sync";
    case Op::kSyncWarp: return "__syncwarp";
    case Op::kSyncThreads: return "__syncthreads";
  }
  return "?";
}

std::string site(const Request& r) {
  std::ostringstream s;
  s << op_name(r.op) << " at " << r.file << ":" << r.line << ":" << r.column;
  return s.str();
}

bool same_site(const Request& a, const Request& b) {
  return a.line == b.line && a.column == b.column && std::strcmp(a.file, b.file) == 0;
}

struct Fiber {
  ucontext_t ctx;
  char* map = nullptr;  // mmap'd stack with a guard page at the low end
  char* stack = nullptr;
  St st = St::kDone;
  bool started = false;  // inside the body (must be reset if a launch is abandoned)
  uint3 tid{0, 0, 0};
  Request req{};
  Reply rep{};
#ifdef SVG_SIM_TSAN
  void* tsan = nullptr;
#endif
#ifdef SVG_SIM_ASAN
  void* fake_stack = nullptr;
#endif
  Fiber() {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    map = static_cast<char*>(mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    if (map == MAP_FAILED) throw SimError("cuda_sim: cannot allocate a fiber stack");
    mprotect(map, page, PROT_NONE);
    stack = map + page;
  }
  ~Fiber() {
#ifdef SVG_SIM_TSAN
    if (tsan) __tsan_destroy_fiber(tsan);
#endif
    munmap(map, kStackBytes + static_cast<size_t>(sysconf(_SC_PAGESIZE)));
  }
};

// Runs blocks on the OS thread that owns it; its fibers are reused across blocks and launches.
struct Runner {
  std::vector<std::unique_ptr<Fiber>> fibers;
  ucontext_t sched{};
  Fiber* cur = nullptr;
  Body body = nullptr;
  void* ctx = nullptr;
  std::string error;  // set by a fiber (exception) before it yields
#ifdef SVG_SIM_TSAN
  void* tsan_sched = nullptr;
#endif
#ifdef SVG_SIM_ASAN
  void* sched_fake_stack = nullptr;
  const void* sched_bottom = nullptr;
  size_t sched_size = 0;
#endif

  static void entry();
  void prepare(Fiber& f);
  void resume(Fiber& f);
  void yield(Fiber& f);
  std::string run_block(const Config& cfg, uint3 bid, bool strict);
  std::string resolve_warp(unsigned warp, unsigned n, bool strict, bool* progress);
};

thread_local Runner* tl_runner = nullptr;

Runner& runner() {
  thread_local std::unique_ptr<Runner> r;
  if (!r) r = std::make_unique<Runner>();
  tl_runner = r.get();
  return *r;
}

void Runner::entry() {
  Runner& r = *tl_runner;
#ifdef SVG_SIM_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &r.sched_bottom, &r.sched_size);
#endif
  for (;;) {
    Fiber& f = *r.cur;
    try {
      r.body(r.ctx);
    } catch (const std::exception& e) {
      r.error = std::string("exception in a CUDA thread: ") + e.what();
    } catch (...) {
      r.error = "unknown exception in a CUDA thread";
    }
    f.st = St::kDone;
    f.started = false;
    r.yield(f);  // the next block resumes here and runs the body again
  }
}

// A fresh context at the top of the fiber's stack (new fibers, and ones a failed launch left
// suspended mid-body).
void Runner::prepare(Fiber& f) {
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack;
  f.ctx.uc_stack.ss_size = kStackBytes;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, &Runner::entry, 0);
#ifdef SVG_SIM_ASAN
  __asan_unpoison_memory_region(f.stack, kStackBytes);  // frames abandoned by a failed launch
#endif
#ifdef SVG_SIM_TSAN
  if (f.tsan) __tsan_destroy_fiber(f.tsan);
  f.tsan = __tsan_create_fiber(0);
#endif
  f.started = false;
}

void Runner::resume(Fiber& f) {
  cur = &f;
  threadIdx = f.tid;
  f.started = true;
#ifdef SVG_SIM_TSAN
  if (!tsan_sched) tsan_sched = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(f.tsan, 0);  // synchronizing: a block is one sequential TSan thread
#endif
#ifdef SVG_SIM_ASAN
  __sanitizer_start_switch_fiber(&sched_fake_stack, f.stack, kStackBytes);
#endif
  swapcontext(&sched, &f.ctx);
#ifdef SVG_SIM_ASAN
  __sanitizer_finish_switch_fiber(sched_fake_stack, nullptr, nullptr);
#endif
}

void Runner::yield(Fiber& f) {
#ifdef SVG_SIM_TSAN
  __tsan_switch_to_fiber(tsan_sched, 0);
#endif
#ifdef SVG_SIM_ASAN
  __sanitizer_start_switch_fiber(&f.fake_stack, sched_bottom, sched_size);
#endif
  swapcontext(&f.ctx, &sched);
#ifdef SVG_SIM_ASAN
  __sanitizer_finish_switch_fiber(f.fake_stack, &sched_bottom, &sched_size);
#endif
}

// Completes at most one rendezvous of warp `warp` (sets *progress), or returns why it cannot.
std::string Runner::resolve_warp(unsigned warp, unsigned n, bool strict, bool* progress) {
  const unsigned first = warp * 32;
  const unsigned lanes = std::min(32u, n - first);
  Fiber** F = reinterpret_cast<Fiber**>(fibers.data());  // unique_ptr<Fiber> is one pointer
  static_assert(sizeof(std::unique_ptr<Fiber>) == sizeof(Fiber*));
  unsigned lead = 32;
  for (unsigned l = 0; l < lanes; ++l)
    if (F[first + l]->st == St::kWarp) {
      lead = l;
      break;
    }
  if (lead == 32) return {};
  const Request& L = F[first + lead]->req;
  std::ostringstream err;
  err << "warp " << warp << ": lane " << lead << " waits at " << site(L) << " with mask 0x" << std::hex
      << L.mask << std::dec << ", but ";
  if (!(L.mask >> lead & 1u)) {
    err << "the mask does not include the calling lane";
    return err.str();
  }
  for (unsigned j = 0; j < 32; ++j) {
    if (!(L.mask >> j & 1u)) continue;
    if (j >= lanes) {
      err << "the mask names lane " << j << ", which does not exist (block of " << n << " threads)";
      return err.str();
    }
    const Fiber& fj = *F[first + j];
    if (fj.st == St::kDone) {
      err << "lane " << j << " exited without reaching it";
      return err.str();
    }
    if (fj.st == St::kBlock) {
      err << "lane " << j << " waits at " << site(fj.req);
      return err.str();
    }
    if (fj.st != St::kWarp) continue;  // cannot happen: every fiber ran until it blocked
    if (fj.req.mask != L.mask || fj.req.op != L.op) {
      err << "lane " << j << " waits at " << site(fj.req) << " with mask 0x" << std::hex << fj.req.mask;
      return err.str();
    }
    if (strict && !same_site(fj.req, L)) {
      err << "lane " << j << " arrives from another call site, " << site(fj.req)
          << " (strict mode; set_sim_options(strict=False) to allow)";
      return err.str();
    }
  }
  // Every lane of the mask is here: compute each lane's reply.
  unsigned ballot = 0;
  for (unsigned j = 0; j < lanes; ++j)
    if ((L.mask >> j & 1u) && F[first + j]->req.pred) ballot |= 1u << j;
  const bool shuffle = L.op == Op::kShflIdx || L.op == Op::kShflUp || L.op == Op::kShflDown ||
                       L.op == Op::kShflXor;
  for (unsigned j = 0; j < lanes; ++j) {
    if (!(L.mask >> j & 1u)) continue;
    Fiber& fj = *F[first + j];
    fj.rep.ballot = ballot;
    if (shuffle) {
      const int w = fj.req.width;
      if (w < 1 || w > 32 || (w & (w - 1)) != 0) {
        err << "lane " << j << " passes width " << w << " (must be a power of two <= 32)";
        return err.str();
      }
      const int lane = static_cast<int>(j), base = lane / w * w, a = fj.req.arg;
      int src = lane;
      switch (fj.req.op) {
        case Op::kShflIdx: src = base + ((a % w) + w) % w; break;
        case Op::kShflUp: src = lane - a >= base ? lane - a : lane; break;
        case Op::kShflDown: src = lane + a < base + w ? lane + a : lane; break;
        case Op::kShflXor: src = (lane ^ a) < base + w ? (lane ^ a) : lane; break;
        default: break;
      }
      if (src < 0 || src >= 32 || !(L.mask >> src & 1u)) {
        err << "lane " << j << " reads lane " << src << ", which is not in the mask (undefined on a GPU)";
        return err.str();
      }
      std::memcpy(fj.rep.out, F[first + src]->req.in, sizeof(fj.rep.out));
    }
  }
  for (unsigned j = 0; j < lanes; ++j)
    if (L.mask >> j & 1u) F[first + j]->st = St::kReady;
  *progress = true;
  return {};
}

std::string Runner::run_block(const Config& cfg, uint3 bid, bool strict) {
  const unsigned n = cfg.block.x * cfg.block.y * cfg.block.z;
  while (fibers.size() < n) {
    fibers.push_back(std::make_unique<Fiber>());
    prepare(*fibers.back());
  }
  blockIdx = bid;
  blockDim = cfg.block;
  gridDim = cfg.grid;
  error.clear();
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = *fibers[i];
    if (f.started) prepare(f);
    f.st = St::kReady;
    f.tid = uint3{i % cfg.block.x, i / cfg.block.x % cfg.block.y, i / (cfg.block.x * cfg.block.y)};
  }
  const unsigned warps = (n + 31) / 32;
  for (;;) {
    for (unsigned i = 0; i < n; ++i) {
      Fiber& f = *fibers[i];
      if (f.st == St::kReady) resume(f);
      if (!error.empty()) return error;
    }
    bool progress = false;
    for (unsigned w = 0; w < warps; ++w) {
      std::string e = resolve_warp(w, n, strict, &progress);
      if (!e.empty()) return e;
    }
    if (progress) continue;
    unsigned done = 0, at_barrier = 0, first_done = n, first_barrier = n;
    for (unsigned i = 0; i < n; ++i) {
      const St st = fibers[i]->st;
      if (st == St::kDone) {
        ++done;
        first_done = std::min(first_done, i);
      } else if (st == St::kBlock) {
        ++at_barrier;
        first_barrier = std::min(first_barrier, i);
      }
    }
    if (done == n) return {};
    if (at_barrier + done != n) return "deadlock: warp collectives can never complete";
    const Request& B = fibers[first_barrier]->req;
    if (done > 0) {
      std::ostringstream s;
      s << "thread " << first_done << " exited while thread " << first_barrier << " waits at " << site(B)
        << " (a barrier must be reached by every thread of the block)";
      return s.str();
    }
    for (unsigned i = 0; i < n; ++i) {
      if (strict && !same_site(fibers[i]->req, B)) {
        std::ostringstream s;
        s << "thread " << i << " waits at " << site(fibers[i]->req) << " but thread " << first_barrier
          << " at " << site(B) << " (strict mode)";
        return s.str();
      }
      fibers[i]->st = St::kReady;
    }
  }
}

std::string describe(const Config& cfg, uint3 bid, const std::string& what) {
  std::ostringstream s;
  s << "cuda_sim: kernel " << cfg.kernel << " (launched at " << cfg.file << ":" << cfg.line << "), block ("
    << bid.x << "," << bid.y << "," << bid.z << ") of grid (" << cfg.grid.x << "," << cfg.grid.y << ","
    << cfg.grid.z << ") x block (" << cfg.block.x << "," << cfg.block.y << "," << cfg.block.z << "): " << what;
  return s.str();
}

void check_config(const Config& c) {
  const uint64_t threads = uint64_t(c.block.x) * c.block.y * c.block.z;
  std::string bad;
  if (c.block.x == 0 || c.block.y == 0 || c.block.z == 0 || c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0)
    bad = "a zero grid or block dimension";
  else if (threads > 1024 || c.block.x > 1024 || c.block.y > 1024 || c.block.z > 64)
    bad = "more than 1024 threads per block (or block.y > 1024, block.z > 64)";
  else if (c.grid.x > 0x7fffffffu || c.grid.y > 65535 || c.grid.z > 65535)
    bad = "grid dimensions over the limits (x < 2^31, y and z <= 65535)";
  if (!bad.empty()) {
    std::ostringstream s;
    s << "cuda_sim: invalid launch configuration of " << c.kernel << " at " << c.file << ":" << c.line
      << ": grid (" << c.grid.x << "," << c.grid.y << "," << c.grid.z << ") x block (" << c.block.x << ","
      << c.block.y << "," << c.block.z << "): " << bad << " (cudaErrorInvalidConfiguration on a GPU)";
    throw SimError(s.str());
  }
}

}  // namespace

Options get_options() {
  std::lock_guard<std::mutex> g(g_options_mutex);
  return g_options;
}

void set_options(const Options& o) {
  if (o.concurrent_blocks < 1 || o.concurrent_blocks > 256)
    throw SimError("cuda_sim: concurrent_blocks must be in [1, 256], got " + std::to_string(o.concurrent_blocks));
  std::lock_guard<std::mutex> g(g_options_mutex);
  g_options = o;
}

dim3 launch_dim(long long v, const char* what, const char* kernel) {
  if (v < 1 || v > 0x7fffffffLL)
    throw SimError(std::string("cuda_sim: invalid launch configuration of ") + kernel + ": " + what +
                   " size " + std::to_string(v) + " is outside [1, 2^31 - 1]");
  return dim3(static_cast<unsigned>(v));
}

Reply collective(const Request& r) {
  Runner& run = *tl_runner;
  Fiber& f = *run.cur;
  f.req = r;
  f.st = r.op == Op::kSyncThreads ? St::kBlock : St::kWarp;
  run.yield(f);
  threadIdx = f.tid;
  return f.rep;
}

void run(const Config& cfg, Body body, void* ctx) {
  check_config(cfg);
  const Options opt = get_options();
  const uint64_t nb = uint64_t(cfg.grid.x) * cfg.grid.y * cfg.grid.z;
  if (nb > kMaxBlocks)
    throw SimError(std::string("cuda_sim: kernel ") + cfg.kernel + ": grid of " + std::to_string(nb) +
                   " blocks is too large for the CPU emulator");
  // Seeded block order (Fisher-Yates with a fixed generator: the same on every platform).
  std::vector<uint32_t> order(nb);
  for (uint64_t b = 0; b < nb; ++b) order[b] = static_cast<uint32_t>(b);
  std::mt19937_64 gen(opt.seed ^ 0x5eed5eed5eedULL);
  for (uint64_t i = nb; i > 1; --i) std::swap(order[i - 1], order[gen() % i]);
  auto bid_of = [&](uint32_t b) {
    return uint3{b % cfg.grid.x, b / cfg.grid.x % cfg.grid.y, b / (cfg.grid.x * cfg.grid.y)};
  };

  std::mutex err_mutex;
  std::string first_error;
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  auto work = [&] {
    Runner& r = runner();
    r.body = body;
    r.ctx = ctx;
    // Nothing a worker does between blocks may synchronize with the other workers (a relaxed
    // claim, no lock), or TSan would order their blocks and miss races between them.
    for (uint64_t i; !failed.load(std::memory_order_relaxed) &&
                     (i = next.fetch_add(1, std::memory_order_relaxed)) < nb;) {
      const uint3 bid = bid_of(order[i]);
      std::string e = r.run_block(cfg, bid, opt.strict);
      if (!e.empty()) {
        std::lock_guard<std::mutex> g(err_mutex);
        if (first_error.empty()) first_error = describe(cfg, bid, e);
        failed = true;
      }
    }
  };
  const uint64_t workers = std::min<uint64_t>(static_cast<uint64_t>(opt.concurrent_blocks), nb);
  if (workers <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (uint64_t w = 1; w < workers; ++w) pool.emplace_back(work);
    std::exception_ptr ep;
    try {
      work();
    } catch (...) {
      ep = std::current_exception();
    }
    for (auto& t : pool) t.join();
    if (ep) std::rethrow_exception(ep);
  }
  if (!first_error.empty()) throw SimError(first_error);
}

}  // namespace svg_sim
