// The version strings of every file Cerebellum writes (docs/formats.md), in
// one place: a reader checks against the same constant its writer used.
#pragma once

namespace cb {

inline constexpr const char* kAuditSchema = "cerebellum.audit/1";
inline constexpr const char* kBenchSchema = "cerebellum.bench/1";
inline constexpr const char* kBuildSchema = "cerebellum.build/1";
inline constexpr const char* kConstraintsSchema = "cerebellum.constraints/1";
inline constexpr const char* kCurvesSchema = "cerebellum.curves/1";
inline constexpr const char* kEvalSchema = "cerebellum.eval/1";
inline constexpr const char* kInspectSchema = "cerebellum.inspect/1";
inline constexpr const char* kMeasureSchema = "cerebellum.measure/1";
inline constexpr const char* kPlanSchema = "cerebellum.plan/1";
inline constexpr const char* kQuantErrorSchema = "cerebellum.qerror/1";
inline constexpr const char* kQuantizeSchema = "cerebellum.quantize/1";
inline constexpr const char* kRecipeSchema = "cerebellum.recipe/1";
inline constexpr const char* kReferenceSchema = "cerebellum.reference/1";
inline constexpr const char* kRunEvalSchema = "cerebellum.runeval/1";
inline constexpr const char* kRunSchema = "cerebellum.run/1";
inline constexpr const char* kFitSchema = "cerebellum.fit/1";  // run dir fit.json: projection + verified
inline constexpr const char* kSearchSchema = "cerebellum.search/1";

}  // namespace cb
