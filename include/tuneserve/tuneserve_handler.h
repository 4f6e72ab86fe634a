/* The C ABI of a tuneserve handler plugin: the override points of the SageMaker inference
 * toolkit. The server loads the plugin from `--handler lib.so`, else $TUNESERVE_HANDLER, else the
 * one `*.so` in the model directory's `code/` folder (SageMaker's place for inference code). Export any subset of the hooks below with C linkage;
 * transform_fn replaces input_fn, predict_fn and output_fn and may not be combined with them.
 *
 * Conventions: every hook returns 0 on success or an HTTP status (400..599) on failure, with a
 * malloc'd message in *error. Every char* it hands back is malloc'd by the plugin and free()'d by
 * the server. Hooks are called concurrently from several threads with the same context. */
#ifndef TUNESERVE_HANDLER_H
#define TUNESERVE_HANDLER_H

#include <stddef.h>

#define TUNESERVE_HANDLER_ABI 2

#ifdef __cplusplus
extern "C" {
#endif

/* The model a request is for, lent to predict_fn and transform_fn for the length of the call
 * (thread-safe). Both functions return 0 or an HTTP status like the hooks, and hand back a string
 * malloc'd by the server that the plugin free()s. */
typedef struct tuneserve_model {
  void* self;
  /* JSON request {"inputs": ...} -> {"labels": [name of each id], "logits": [[K floats], one per
   * input]}: tokenized, truncated and batched as the endpoint does, before any softmax/sigmoid. */
  int (*logits)(void* self, const char* request_json, char** logits_json, char** error);
  /* JSON request -> the prediction the endpoint gives without a handler (the pipeline's shape,
   * "parameters" honoured). */
  int (*predict)(void* self, const char* request_json, char** prediction_json, char** error);
} tuneserve_model;

/* Required: returns TUNESERVE_HANDLER_ABI, so an old plugin fails at load, not at a request. */
int tuneserve_handler_abi(void);

/* Once per model at load, after the model itself is loaded; returns the context the other hooks
 * get (may be NULL). On failure returns NULL and sets *error. */
void* tuneserve_model_fn(const char* model_dir, char** error);

/* Request body -> a JSON request in the Hugging Face shape {"inputs": ..., "parameters": ...}. */
int tuneserve_input_fn(void* context, const char* body, size_t size, const char* content_type,
                       char** request_json, char** error);

/* JSON request -> JSON prediction, instead of the default prediction; `model` runs the model. */
int tuneserve_predict_fn(void* context, const tuneserve_model* model, const char* request_json,
                         char** prediction_json, char** error);

/* JSON prediction (the pipeline's shape) -> response body and its content type. */
int tuneserve_output_fn(void* context, const char* prediction_json, const char* accept,
                        char** body, size_t* size, char** content_type, char** error);

/* The whole request -> the whole response; `model` runs the model. */
int tuneserve_transform_fn(void* context, const tuneserve_model* model, const char* body,
                           size_t size, const char* content_type,
                           const char* accept, char** out_body, size_t* out_size,
                           char** out_content_type, char** error);

#ifdef __cplusplus
}
#endif

#endif /* TUNESERVE_HANDLER_H */
