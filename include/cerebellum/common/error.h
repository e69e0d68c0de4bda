// Error policy (see docs/errors.md):
//  - typed exceptions, all derived from cb::Error, for what cannot continue;
//  - values (std::optional, result structs) for expected outcomes;
//  - assert() only for programmer errors.
// The CLI maps each type to an exit code; the library never prints.
#pragma once

#include <stdexcept>
#include <string>

namespace cb {

enum class ExitCode : int {
  kOk = 0,
  kInternal = 1,
  kUsage = 2,        // bad flags or arguments
  kInput = 3,        // bad input file: corrupt, truncated, unsupported
  kRecipe = 4,       // recipe or plan cannot apply to this model
  kBudget = 5,       // infeasible budget
  kIo = 6,           // cannot write output, disk full
  kEngine = 7,       // llama.cpp / ggml failed (model load, eval)
  kMismatch = 8,     // file belongs to another model / settings
  kGate = 9,         // build does not beat its baseline (ship gate)
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, ExitCode code = ExitCode::kInternal)
      : std::runtime_error(what), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

#define CB_DEFINE_ERROR(Name, Code)                                          \
  class Name : public Error {                                                \
   public:                                                                   \
    explicit Name(const std::string& what) : Error(what, ExitCode::Code) {} \
  };

CB_DEFINE_ERROR(UsageError, kUsage)
CB_DEFINE_ERROR(InputError, kInput)
CB_DEFINE_ERROR(RecipeError, kRecipe)
CB_DEFINE_ERROR(BudgetError, kBudget)
CB_DEFINE_ERROR(IoError, kIo)
CB_DEFINE_ERROR(EngineError, kEngine)
CB_DEFINE_ERROR(MismatchError, kMismatch)
CB_DEFINE_ERROR(GateError, kGate)

#undef CB_DEFINE_ERROR

}  // namespace cb
