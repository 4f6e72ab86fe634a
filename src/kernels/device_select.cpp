// The one place a command's device is chosen (see device_select.h).
#include "kernels/device_select.h"

#include "core/error.h"

namespace tuneserve {

DeviceChoice resolve_device(const DeviceRequest& request, int gpus, const std::string& why_none) {
  if (!request.value.empty()) {
    try {
      Device d = parse_device(request.value);
      if (request.value == "cuda") d.index = request.local_rank;  // one GPU per rank of a host
      return {d, ""};
    } catch (const Error& e) {
      fail("{}: {}", request.source, e.what());
    }
  }
  if (request.sagemaker_gpus <= 0) return {};
  if (gpus > request.local_rank)
    return {Device{Device::Kind::cuda, request.local_rank},
            fmt::format("SM_NUM_GPUS={}: running on cuda:{} (--device cpu to keep to the CPU)", request.sagemaker_gpus,
                        request.local_rank)};
  if (gpus > 0)
    fail("SM_NUM_GPUS={}: local rank {} has no GPU of its own ({} visible); run at most one rank per GPU",
         request.sagemaker_gpus, request.local_rank, gpus);
  return {Device{}, fmt::format("SM_NUM_GPUS={} but no GPU is usable here ({}): running on the CPU",
                                request.sagemaker_gpus, why_none.empty() ? "none found" : why_none)};
}

DeviceChoice select_device(const DeviceRequest& request) {
  std::string why_none;
  // Counting GPUs initialises the driver: only when the job contract asks for the automatic choice.
  const int gpus = request.value.empty() && request.sagemaker_gpus > 0 ? cuda_device_count(&why_none) : 0;
  DeviceChoice choice = resolve_device(request, gpus, why_none);
  try {
    require_device(choice.device);
  } catch (const Error& e) {
    fail("{}: {}", request.value.empty() ? "SM_NUM_GPUS" : request.source, e.what());
  }
  return choice;
}

}  // namespace tuneserve
