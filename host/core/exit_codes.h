// The executable's exit statuses, one meaning each (README, "Exit codes").
#pragma once

namespace xdpp {

inline constexpr int kExitFailure = 1;  // loading, attaching or running failed
inline constexpr int kExitUsage = 2;    // bad command line or pipeline file; nothing was loaded

}  // namespace xdpp
