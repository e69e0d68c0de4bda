// `mpirun -np N cerebellum measure ...` (or `srun`): one sweep, units handed
// out dynamically. Built only with MPI (-DCB_MPI=ON, Debian's OpenMPI); the
// default build refuses to run under a multi-rank launcher.
//
// Rank 0 first computes the reference stores alone (the `--reference-only`
// pass; every rank then reads them, --shared-reference), then serves claims
// from a thread while it measures like every other rank: a rank asks for each
// unit in the plan's order and measures it only when granted (never measured
// in the journal, not granted to another rank). Each rank appends its records
// to its own journal, <journal>.rank<R>.jsonl (fsynced per record), and at the
// end rank 0 merges the journal and every rank's into <journal> (measure
// merge) and removes the rank journals. A rank that dies takes the job down
// (MPI's default) and loses only its unit in flight: `--resume` reads the
// journal and the rank journals left behind and hands out only what is missing.
// Each rank uses GPU = its node-local rank (CUDA_VISIBLE_DEVICES).
#pragma once

#include "cerebellum/measure/measure.h"

namespace cb::measure {

// Ranks of the launcher this process runs under (mpirun/srun set it in the
// environment); 1 when not launched by one.
int launcher_world_size();
// This process is rank 0 of that launcher (or not launched by one).
bool is_launcher_rank0();

// The sweep over every rank (see above). Call only when
// launcher_world_size() > 1. UsageError when built without MPI, or for
// options a dynamic sweep cannot take (--shard, --plan auto, --probes,
// --reference-only). On rank 0 the summary is the merged journal's; on the
// others their own share.
MeasureSummary run_measure_mpi(const MeasureOptions& options);

}  // namespace cb::measure
