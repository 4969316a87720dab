// scalevgae._C_cuda_sim: the op schemas of csrc/ops.cpp under torch.ops.scalevgae_cuda_sim (the
// namespace comes from library_ns.h with SVG_CUDA_SIM) and the emulator's Python controls.
#include "ops.cpp"

#include "cuda_sim/simt.h"

namespace {

void set_sim_options(uint64_t seed, int concurrent_blocks, bool strict) {
  svg_sim::Options o;
  o.seed = seed;
  o.concurrent_blocks = concurrent_blocks;
  o.strict = strict;
  svg_sim::set_options(o);
}

pybind11::dict get_sim_options() {
  const svg_sim::Options o = svg_sim::get_options();
  pybind11::dict d;
  d["seed"] = o.seed;
  d["concurrent_blocks"] = o.concurrent_blocks;
  d["strict"] = o.strict;
  return d;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("with_cuda", [] { return false; }, "whether real CUDA kernels were compiled in (never here)");
  m.def("is_cuda_sim", [] { return true; }, "the CUDA kernels run on the CPU SIMT emulator");
  m.def("set_sim_options", &set_sim_options, pybind11::arg("seed") = 0, pybind11::arg("concurrent_blocks") = 1,
        pybind11::arg("strict") = true,
        "block-order seed, OS threads running blocks at once, same-call-site check of collectives");
  m.def("get_sim_options", &get_sim_options, "the current emulator options");
}
