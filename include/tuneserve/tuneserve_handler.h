/* The C ABI of a tuneserve handler plugin (`tuneserve serve --handler lib.so`): the override
 * points of the SageMaker inference toolkit. Export any subset of the hooks below with C linkage;
 * transform_fn replaces input_fn, predict_fn and output_fn and may not be combined with them.
 *
 * Conventions: every hook returns 0 on success or an HTTP status (400..599) on failure, with a
 * malloc'd message in *error. Every char* it hands back is malloc'd by the plugin and free()'d by
 * the server. Hooks are called concurrently from several threads with the same context. */
#ifndef TUNESERVE_HANDLER_H
#define TUNESERVE_HANDLER_H

#include <stddef.h>

#define TUNESERVE_HANDLER_ABI 1

#ifdef __cplusplus
extern "C" {
#endif

/* Required: returns TUNESERVE_HANDLER_ABI, so an old plugin fails at load, not at a request. */
int tuneserve_handler_abi(void);

/* Once per model at load, after the model itself is loaded; returns the context the other hooks
 * get (may be NULL). On failure returns NULL and sets *error. */
void* tuneserve_model_fn(const char* model_dir, char** error);

/* Request body -> a JSON request in the Hugging Face shape {"inputs": ..., "parameters": ...}. */
int tuneserve_input_fn(void* context, const char* body, size_t size, const char* content_type,
                       char** request_json, char** error);

/* JSON request -> JSON prediction, instead of running the model. */
int tuneserve_predict_fn(void* context, const char* request_json, char** prediction_json,
                         char** error);

/* JSON prediction (the pipeline's shape) -> response body and its content type. */
int tuneserve_output_fn(void* context, const char* prediction_json, const char* accept,
                        char** body, size_t* size, char** content_type, char** error);

/* The whole request -> the whole response; the model is not run. */
int tuneserve_transform_fn(void* context, const char* body, size_t size, const char* content_type,
                           const char* accept, char** out_body, size_t* out_size,
                           char** out_content_type, char** error);

#ifdef __cplusplus
}
#endif

#endif /* TUNESERVE_HANDLER_H */
