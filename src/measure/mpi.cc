// The sweep over MPI ranks (include/cerebellum/measure/mpi.h).
#include "cerebellum/measure/mpi.h"
#include "config_eval.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/measure/merge.h"

#ifdef CB_HAVE_MPI
#include <mpi.h>
#endif

namespace cb::measure {
namespace fs = std::filesystem;

int launcher_world_size() {
  // mpirun (OpenMPI), PMI launchers (srun --mpi=pmi2, MPICH), a Slurm job step.
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    if (const char* v = std::getenv(var)) return std::max(1, std::atoi(v));
  }
  if (std::getenv("SLURM_STEP_ID") && std::getenv("SLURM_PROCID")) {
    if (const char* v = std::getenv("SLURM_STEP_NUM_TASKS")) return std::max(1, std::atoi(v));
  }
  return 1;
}

bool is_launcher_rank0() {
  for (const char* var : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"}) {
    if (const char* v = std::getenv(var)) return std::atoi(v) == 0;
  }
  return true;
}

namespace {

void check_mpi_options(const MeasureOptions& o) {
  if (o.shard.sharded()) throw UsageError("--shard is for independent processes; under mpirun the ranks share the units");
  if (o.reference_only) throw UsageError("--reference-only: run it as one process (rank 0 does this pass anyway)");
  if (o.plan == PlanLevel::kAuto || o.probes.enabled) {
    throw UsageError("an MPI sweep works with --plan tensors|groups|layers and without --probes");
  }
  if (o.out_path.empty()) throw UsageError("measure needs --out");
}

}  // namespace

#ifndef CB_HAVE_MPI

MeasureSummary run_measure_mpi(const MeasureOptions& o) {
  check_mpi_options(o);
  throw UsageError(fmt::format("launched with {} ranks, but this build has no MPI: rebuild with "
                               "CB_MPI=ON bash scripts/setup.sh (docs/measure.md), or run one process",
                               launcher_world_size()));
}

#else

namespace {

// The journals a run over ranks leaves: <journal>.rank<R>.jsonl.
std::vector<std::string> rank_journals(const std::string& journal) {
  std::vector<std::string> out;
  const fs::path p(journal);
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  const std::string prefix = p.filename().string() + ".rank";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && name.size() > 6 && name.substr(name.size() - 6) == ".jsonl") {
      out.push_back((dir / name).string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string rank_journal(const std::string& journal, int rank) { return fmt::format("{}.rank{}.jsonl", journal, rank); }

// Rank 0's view: which units are done or handed out.
class Ledger {
 public:
  explicit Ledger(std::set<std::string> done) : taken_(std::move(done)) {}
  bool claim(const std::string& key) {
    const std::lock_guard<std::mutex> lock(mutex_);
    return taken_.insert(key).second;
  }

 private:
  std::mutex mutex_;
  std::set<std::string> taken_;
};

constexpr int kTagClaim = 1, kTagGrant = 2, kTagDone = 3;

// Rank 0 decides, everyone learns the outcome: a failure on rank 0 (bad input,
// a journal without --resume) ends every rank with an error, not a hang.
template <typename F>
void on_rank0(int rank, const char* what, F&& f) {
  int ok = 1;
  std::string error;
  if (rank == 0) {
    try {
      f();
    } catch (...) {
      ok = 0;
      MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
      throw;
    }
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (!ok) throw EngineError(fmt::format("rank 0 failed during {} (its message says why)", what));
}

// Rank 0's server: grants claims until every other rank says it is done.
// Returns how many ranks finished with an error.
int serve(Ledger& ledger, int n_ranks) {
  int finished = 0, failed = 0;
  while (finished < n_ranks - 1) {
    MPI_Status st;
    MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
    if (st.MPI_TAG == kTagClaim) {
      int n = 0;
      MPI_Get_count(&st, MPI_CHAR, &n);
      std::string key(static_cast<size_t>(n), '\0');
      MPI_Recv(key.data(), n, MPI_CHAR, st.MPI_SOURCE, kTagClaim, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      int grant = ledger.claim(key) ? 1 : 0;
      MPI_Send(&grant, 1, MPI_INT, st.MPI_SOURCE, kTagGrant, MPI_COMM_WORLD);
    } else {
      int status = 0;
      MPI_Recv(&status, 1, MPI_INT, st.MPI_SOURCE, kTagDone, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      ++finished;
      failed += status != 0;
    }
  }
  return failed;
}

bool remote_claim(const std::string& key) {
  MPI_Send(key.data(), static_cast<int>(key.size()), MPI_CHAR, 0, kTagClaim, MPI_COMM_WORLD);
  int grant = 0;
  MPI_Recv(&grant, 1, MPI_INT, 0, kTagGrant, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  return grant != 0;
}

// GPU = node-local rank, unless the launcher bound devices already.
void pick_gpu() {
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int local = 0;
  MPI_Comm_rank(node, &local);
  MPI_Comm_free(&node);
  if (!std::getenv("CUDA_VISIBLE_DEVICES")) setenv("CUDA_VISIBLE_DEVICES", std::to_string(local).c_str(), 1);
}

// Rank 0, before any rank measures: refuse a journal left without --resume,
// compute the reference stores, and list what is done already.
std::set<std::string> prepare(const MeasureOptions& o) {
  std::vector<std::string> existing = rank_journals(o.out_path);
  std::error_code ec;
  if (fs::exists(o.out_path, ec) && fs::file_size(o.out_path, ec) > 0) existing.insert(existing.begin(), o.out_path);
  if (!existing.empty() && !o.resume) {
    throw UsageError(fmt::format("{} exists: pass --resume to continue it, or remove it (and {}.rank*.jsonl)",
                                 existing.front(), o.out_path));
  }
  MeasureOptions ref = o;
  ref.reference_only = true;
  run_measure(ref);
  std::set<std::string> done;
  if (!existing.empty()) {
    for (const auto& m : merge_journals(existing).journal.measurements) {
      done.insert(measurement_key(m.domain, m.direction, m.unit.id, m.types));
    }
  }
  return done;
}

// Rank 0, after every rank is done: the journal and the rank journals as one.
MeasureSummary finish(const MeasureOptions& o, MeasureSummary own) {
  std::vector<std::string> inputs = rank_journals(o.out_path);
  std::error_code ec;
  if (fs::exists(o.out_path, ec) && fs::file_size(o.out_path, ec) > 0) inputs.insert(inputs.begin(), o.out_path);
  const MergeResult r = merge_journals(inputs);
  for (const auto& d : r.duplicates) o.logger.warn("duplicate: " + d);
  write_file_atomic(o.out_path, journal_text(r.journal));
  for (const auto& p : inputs) {
    if (p != o.out_path) fs::remove(p, ec);
  }
  fs::remove(base_model_path(o), ec);  // the base mix the reference pass built for every rank
  own.journal = r.journal;
  own.n_measured = r.n_measurements;
  o.logger.info(fmt::format("mpi: {} journals merged into {} ({} measurements)", inputs.size(), o.out_path,
                            r.n_measurements));
  return own;
}

}  // namespace

MeasureSummary run_measure_mpi(const MeasureOptions& o) {
  check_mpi_options(o);
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
  if (provided < MPI_THREAD_SERIALIZED) throw EngineError("MPI: this MPI library cannot serve claims from a thread");
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  pick_gpu();
  std::set<std::string> done;
  on_rank0(rank, "the reference pass", [&] { done = prepare(o); });
  Ledger ledger(std::move(done));
  int failed = 0;
  std::thread server;
  if (rank == 0) server = std::thread([&] { failed = serve(ledger, size); });
  MeasureOptions mine = o;
  mine.out_path = rank_journal(o.out_path, rank);
  mine.resume = true;  // this rank's journal from an interrupted run, if any
  mine.shared_reference = reference_store_prefix(o);  // where rank 0's reference pass left the stores
  if (rank == 0) {
    mine.claim = [&ledger](const std::string& key) { return ledger.claim(key); };
  } else {
    mine.claim = remote_claim;
  }
  MeasureSummary summary;
  int status = 0;
  try {
    summary = run_measure(mine);
  } catch (const std::exception& e) {
    status = 1;
    if (rank != 0) {
      MPI_Send(&status, 1, MPI_INT, 0, kTagDone, MPI_COMM_WORLD);
      throw;  // the launcher ends the job; --resume continues it
    }
    // Rank 0 serves the others from a thread: end the job now, saying why.
    o.logger.warn(fmt::format("rank 0: {}; ending the job (finished units are kept: rerun with --resume)", e.what()));
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (rank != 0) MPI_Send(&status, 1, MPI_INT, 0, kTagDone, MPI_COMM_WORLD);
  if (rank == 0) {
    server.join();
    if (failed == 0) summary = finish(o, std::move(summary));
  }
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Finalize();
  if (failed) throw EngineError(fmt::format("{} rank(s) failed; finished units are kept: rerun with --resume", failed));
  return summary;
}

#endif

}  // namespace cb::measure
