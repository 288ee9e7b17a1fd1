// nnforge stream harness for a Verilator model of nnforge_top (built with
// --prefix Vtop), C++14 or later, clean under g++ -Wall -Wextra. Driven by
// nnforge.sim.verilator_cpp; no Python in the cycle loop.
//
// usage: nnforge_sim JOB.bin OUT.bin RESULT.bin
//
// JOB.bin, little-endian:  8 bytes magic "NNFJOB1\0"; 10 int64: n_vec, n_in, n_out,
//   in_width, out_width, max_cycles, reset_cycles, seed, progress_every, reserved;
//   1 float64: stall probability; then n_vec * n_in uint64 input bit patterns in
//   stream order.
// OUT.bin: n_vec * n_out uint64 output bit patterns (zero where none arrived).
// RESULT.bin: 8 bytes magic "NNFRES1\0"; 9 int64: status (0 ok, 1 timeout), cycles,
//   vectors_in, vectors_out, elements_out, out_last_ok, n_first, n_last, processor
//   nanoseconds of the cycle loop (what the process itself used, whatever else runs);
//   1 float64: wall seconds of the cycle loop; n_first int64 cycles of the first input
//   beat of each vector, n_last int64 cycles of the last output beat of each vector.
// stdout: "progress N" after every progress_every finished vectors and at the end.
//
// Timing is that of nnforge.sim.cocotb_stream_tb: synchronous active-high reset for
// reset_cycles clocks, one more clock with rst low and out_ready high, then cycle 0.
// Each cycle, between the falling and the rising edge, the harness takes the output
// beat the rising edge transfers (out_valid and out_ready) and presents the next input
// beat only when in_ready is high (both depend only on registers). With stall > 0 it
// drops out_ready and withholds input beats with that probability per cycle.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <type_traits>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

static_assert(sizeof(Vtop::in_data) <= 8, "in_data is wider than 64 bits");
static_assert(sizeof(Vtop::out_data) <= 8, "out_data is wider than 64 bits");

namespace {

struct Job {
    int64_t n_vec, n_in, n_out, in_width, out_width, max_cycles, reset_cycles, seed, progress_every, reserved;
    double stall;
};

// splitmix64: a small, seedable generator for the stall decisions
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed) {}
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
};

uint64_t mask_of(int64_t width) { return width >= 64 ? ~0ULL : ((1ULL << width) - 1ULL); }

bool read_all(FILE *f, void *dst, size_t size, size_t n) { return n == 0 || fread(dst, size, n, f) == n; }

bool write_all(FILE *f, const void *src, size_t size, size_t n) { return n == 0 || fwrite(src, size, n, f) == n; }

int64_t cpu_ns() {
    timespec ts{};
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
    return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s JOB.bin OUT.bin RESULT.bin\n", argv[0]);
        return 2;
    }
    FILE *fj = fopen(argv[1], "rb");
    if (!fj) {
        fprintf(stderr, "cannot open the job %s\n", argv[1]);
        return 2;
    }
    char magic[8];
    Job job;
    if (!read_all(fj, magic, 1, 8) || memcmp(magic, "NNFJOB1", 8) != 0 || !read_all(fj, &job, sizeof job, 1)) {
        fprintf(stderr, "%s is not an nnforge job (version 1)\n", argv[1]);
        return 2;
    }
    if (job.n_vec <= 0 || job.n_in <= 0 || job.n_out <= 0 || job.in_width <= 0 || job.out_width <= 0
        || job.in_width > static_cast<int64_t>(8 * sizeof(Vtop::in_data))
        || job.out_width > static_cast<int64_t>(8 * sizeof(Vtop::out_data)) || !(job.stall >= 0.0 && job.stall < 1.0)) {
        fprintf(stderr, "bad job: n_vec %lld n_in %lld n_out %lld in_width %lld (port %zu bits) out_width %lld "
                "(port %zu bits) stall %g\n", static_cast<long long>(job.n_vec), static_cast<long long>(job.n_in),
                static_cast<long long>(job.n_out), static_cast<long long>(job.in_width), 8 * sizeof(Vtop::in_data),
                static_cast<long long>(job.out_width), 8 * sizeof(Vtop::out_data), job.stall);
        return 2;
    }
    const size_t total_in = static_cast<size_t>(job.n_vec * job.n_in);
    const size_t total_out = static_cast<size_t>(job.n_vec * job.n_out);
    const size_t n_in = static_cast<size_t>(job.n_in), n_out = static_cast<size_t>(job.n_out);
    std::vector<uint64_t> x(total_in);
    if (!read_all(fj, x.data(), sizeof(uint64_t), total_in)) {
        fprintf(stderr, "the job %s is short of input beats\n", argv[1]);
        return 2;
    }
    fclose(fj);
    const uint64_t in_mask = mask_of(job.in_width), out_mask = mask_of(job.out_width);
    for (uint64_t &v : x) v &= in_mask;

    std::vector<uint64_t> y(total_out, 0);
    std::vector<int64_t> first_in, last_out;
    first_in.reserve(static_cast<size_t>(job.n_vec));
    last_out.reserve(static_cast<size_t>(job.n_vec));
    const bool stall = job.stall > 0.0;
    const int64_t every = job.progress_every > 0 ? job.progress_every : job.n_vec;
    Rng rng(static_cast<uint64_t>(job.seed));

    std::unique_ptr<VerilatedContext> ctx(new VerilatedContext);
    Vtop model(ctx.get(), "top");  // small: the model's state lives in Vtop__Syms on the heap
    Vtop *const top = &model;
    using in_t = std::remove_reference<decltype(Vtop::in_data)>::type;  // CData .. QData

    top->clk = 0;
    top->rst = 1;
    top->in_valid = 0;
    top->in_data = 0;
    top->out_ready = 0;
    top->eval();
    for (int64_t i = 0; i < job.reset_cycles; i++) {
        top->clk = 1;
        top->eval();
        top->clk = 0;
        top->eval();
    }
    top->rst = 0;
    top->out_ready = 1;
    top->clk = 1;
    top->eval();
    top->clk = 0;
    top->eval();

    size_t n_fed = 0, n_got = 0;
    bool last_ok = true;
    int status = 0;
    int64_t cyc = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t cpu0 = cpu_ns();
    for (;;) {
        // here: after the falling edge of cycle cyc; the next rising edge ends it
        if (cyc > job.max_cycles) {
            status = 1;
            break;
        }
        bool take = true;
        if (stall) {
            take = rng.uniform() >= job.stall;
            top->out_ready = take ? 1 : 0;
        }
        if (take && top->out_valid) {
            const size_t pos = n_got % n_out;
            y[n_got] = static_cast<uint64_t>(top->out_data) & out_mask;
            if ((top->out_last != 0) != (pos == n_out - 1)) last_ok = false;
            n_got++;
            if (pos == n_out - 1) {
                last_out.push_back(cyc);
                const int64_t done = static_cast<int64_t>(last_out.size());
                if (done % every == 0 || done == job.n_vec) {
                    printf("progress %lld\n", static_cast<long long>(done));
                    fflush(stdout);
                }
            }
        }
        if (n_fed < total_in && top->in_ready && (!stall || rng.uniform() >= job.stall)) {
            top->in_data = static_cast<in_t>(x[n_fed]);
            top->in_valid = 1;
            if (n_fed % n_in == 0) first_in.push_back(cyc);
            n_fed++;
        } else {
            top->in_valid = 0;
        }
        if (n_got == total_out) break;
        top->clk = 1;
        top->eval();
        top->clk = 0;
        top->eval();
        cyc++;
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int64_t cpu = cpu_ns() - cpu0;
    top->final();

    FILE *fo = fopen(argv[2], "wb");
    if (!fo || !write_all(fo, y.data(), sizeof(uint64_t), total_out) || fclose(fo) != 0) {
        fprintf(stderr, "cannot write the outputs to %s\n", argv[2]);
        return 2;
    }
    const int64_t head[9] = {status, cyc, static_cast<int64_t>(n_fed / n_in), static_cast<int64_t>(n_got / n_out),
                             static_cast<int64_t>(n_got), last_ok ? 1 : 0, static_cast<int64_t>(first_in.size()),
                             static_cast<int64_t>(last_out.size()), cpu};
    FILE *fr = fopen(argv[3], "wb");
    if (!fr || !write_all(fr, "NNFRES1", 1, 8) || !write_all(fr, head, sizeof(int64_t), 9)
        || !write_all(fr, &wall, sizeof wall, 1) || !write_all(fr, first_in.data(), sizeof(int64_t), first_in.size())
        || !write_all(fr, last_out.data(), sizeof(int64_t), last_out.size()) || fclose(fr) != 0) {
        fprintf(stderr, "cannot write the result to %s\n", argv[3]);
        return 2;
    }
    return 0;
}
