// A pipeline that outlives its daemon: adopted by the next `run` of its name, removed by `detach`.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pipeline.h"

namespace xdpp {

/// What the next run found of a persisted pipeline of its name.
struct Adoption {
  std::unique_ptr<Pipeline> pipeline;  // what runs, taken over as it is (nothing loaded, no map written)
  std::string new_chain_reason;        // why it cannot simply go on as it is ("" when it can): upgrade, objects changed
  int pid = 0;                         // the daemon that ran it last
};

/// With the run lock of `file_spec.name` held: when that name runs persisted without a daemon, takes it over
/// from its pins and state file and checks it (every interface's link, chain slots, program tags).
/// `interfaces` are the ones the file names, resolved, in order. Returns no pipeline when nothing persisted
/// runs (a dead non-persisted run's leftovers, or links whose interfaces are all gone: the caller's
/// publish() removes them), an error when it runs but cannot be taken over (other interfaces, one of its
/// links gone, another attach mode, or not what its record says); then it is left untouched.
Result<Adoption> adopt_persisted(const PipelineSpec& file_spec, const std::vector<InterfaceInfo>& interfaces);

}  // namespace xdpp
