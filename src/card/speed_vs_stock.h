// The card's speed section, ours next to the same-size stock mix
// (CardOptions::speed_vs_stock). Internal to src/card/.
#pragma once

#include <optional>
#include <string>

#include "card/run_dir.h"
#include "cerebellum/card/card.h"

namespace cb::card {

// The stock preset to compare with: quantize.json's baseline, else the stock
// mix of eval.json nearest in size to the build; "" when there is neither.
std::string same_size_stock_preset(const RunDir& run);

// Times the build (and, when `vs_stock`, the stock preset built from run.json's
// source into a temporary file in `work_dir`, removed afterwards) interleaved.
// A stock mix that cannot be built or timed gives a StockSpeed with a note,
// not an error: the build's own speed is still reported.
void measure_card_speed(const RunDir& run, const SpeedOptions& o, bool vs_stock, const std::string& work_dir,
                        const Logger& logger, std::optional<SpeedResult>& ours, std::optional<StockSpeed>& stock);

}  // namespace cb::card
