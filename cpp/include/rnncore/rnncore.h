/* rnncore C API: the fused SimpleRNN, LSTM and GRU kernels and trained models, from C or C++.
 *
 * Link with the library in the wheel (librnncore.so.0): in CMake,
 *     find_package(rnncore CONFIG REQUIRED)   # rnncore_DIR = rnncore.get_cmake_dir()
 *     target_link_libraries(app PRIVATE rnncore::rnncore)
 *
 * Errors: every function that can fail returns an rnncore_status (0 is success) or NULL, and
 * leaves a message for the calling thread in rnncore_last_error(). Nothing here aborts the
 * process or throws across the C boundary; allocation failure is RNNCORE_ERROR_OUT_OF_MEMORY.
 *
 * Threads: the kernels split each call over rnncore's thread pool (rnncore_set_num_threads).
 * Different models and streams may be used from different threads at once; one model may be
 * shared by several threads for rnncore_model_predict. A stream belongs to one thread at a time.
 *
 * Layouts are those of the Python functional API (docs/design.md): T steps, B batch rows,
 * I input features, H hidden units, G gates (SimpleRNN 1, GRU 3, LSTM 4); weights in PyTorch's
 * layout and gate order (w_ih [G*H, I], w_hh [G*H, H]; LSTM i,f,g,o; GRU r,z,n); every array
 * dense and row-major. Sequences are right-padded: row b has lengths[b] real steps.
 */
#ifndef RNNCORE_RNNCORE_H
#define RNNCORE_RNNCORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RNNCORE_API __attribute__((visibility("default")))

/* ---- errors, version, threads ---- */

typedef enum rnncore_status {
  RNNCORE_OK = 0,
  RNNCORE_ERROR_INVALID_ARGUMENT = 1, /* NULL, a bad size, mismatched arguments */
  RNNCORE_ERROR_OUT_OF_MEMORY = 2,
  RNNCORE_ERROR_FILE = 3,        /* a model file missing, unreadable, damaged or hostile */
  RNNCORE_ERROR_UNSUPPORTED = 4, /* a layer or setting the C runtime does not run */
  RNNCORE_ERROR_INTERNAL = 5
} rnncore_status;

/* The calling thread's last error message ("" if none); valid until its next rnncore call. */
RNNCORE_API const char* rnncore_last_error(void);
/* The library version, e.g. "0.1.0". */
RNNCORE_API const char* rnncore_version(void);
/* The most threads a kernel call may use (n >= 1; default: the CPUs the process may use). */
RNNCORE_API void rnncore_set_num_threads(int n);
RNNCORE_API int rnncore_get_num_threads(void);

/* ---- one recurrent layer, one direction (the functional API) ---- */

typedef enum rnncore_cell {
  RNNCORE_CELL_RNN_TANH = 0,
  RNNCORE_CELL_RNN_RELU = 1,
  RNNCORE_CELL_LSTM = 2,
  RNNCORE_CELL_GRU = 3,             /* reset_after (PyTorch's and Keras's default) */
  RNNCORE_CELL_GRU_RESET_BEFORE = 4 /* reset_after=False (ONNX's default) */
} rnncore_cell;

typedef struct rnncore_dims {
  int64_t steps;       /* T >= 1 */
  int64_t batch;       /* B >= 1 */
  int64_t input_size;  /* I >= 1 */
  int64_t hidden_size; /* H >= 1 */
  int batch_first;     /* nonzero: x, y, dy, dx are [B, T, .] instead of [T, B, .] */
  int reverse;         /* nonzero: row b runs t = lengths[b]-1 ... 0 */
} rnncore_dims;

/* Forward arguments; optional pointers may be NULL (no bias, zero initial state, all rows of
 * length T). The float64 variants take the same structs with double. */
typedef struct rnncore_forward_args_f32 {
  const float* x;         /* [T, B, I] or [B, T, I]; required */
  const float* w_ih;      /* [G*H, I]; required */
  const float* w_hh;      /* [G*H, H]; required */
  const float* b_ih;      /* [G*H] or NULL */
  const float* b_hh;      /* [G*H] or NULL */
  const float* h0;        /* [B, H] or NULL */
  const float* c0;        /* [B, H] or NULL; LSTM only */
  const int64_t* lengths; /* [B], each in [0, T], or NULL */
  float* y;               /* [T, B, H] or [B, T, H]; required */
  float* h_n;             /* [B, H] or NULL */
  float* c_n;             /* [B, H] or NULL; LSTM only */
  float* workspace;       /* rnncore_workspace_size() elements for a training forward */
} rnncore_forward_args_f32;

typedef struct rnncore_forward_args_f64 {
  const double* x;
  const double* w_ih;
  const double* w_hh;
  const double* b_ih;
  const double* b_hh;
  const double* h0;
  const double* c0;
  const int64_t* lengths;
  double* y;
  double* h_n;
  double* c_n;
  double* workspace;
} rnncore_forward_args_f64;

/* Backward arguments: the forward's x, weights and lengths, its workspace (consumed), and the
 * gradients of the outputs (NULL: zeros). Every gradient output is overwritten, not added to;
 * db_ih / db_hh may be NULL when the layer has no such bias; dc0 is required for LSTM. */
typedef struct rnncore_backward_args_f32 {
  const float* x;
  const float* w_ih;
  const float* w_hh;
  const int64_t* lengths;
  float* workspace;  /* filled by rnncore_training_forward_f32 */
  const float* dy;   /* like y, or NULL */
  const float* dh_n; /* [B, H] or NULL */
  const float* dc_n; /* [B, H] or NULL; LSTM only */
  float* dx;         /* like x; required */
  float* dw_ih;      /* [G*H, I]; required */
  float* dw_hh;      /* [G*H, H]; required */
  float* db_ih;      /* [G*H] or NULL */
  float* db_hh;      /* [G*H] or NULL */
  float* dh0;        /* [B, H]; required */
  float* dc0;        /* [B, H]; required for LSTM */
} rnncore_backward_args_f32;

typedef struct rnncore_backward_args_f64 {
  const double* x;
  const double* w_ih;
  const double* w_hh;
  const int64_t* lengths;
  double* workspace;
  const double* dy;
  const double* dh_n;
  const double* dc_n;
  double* dx;
  double* dw_ih;
  double* dw_hh;
  double* db_ih;
  double* db_hh;
  double* dh0;
  double* dc0;
} rnncore_backward_args_f64;

/* Elements (of the layer's float type) a training forward keeps for the backward; -1 and a
 * message for a bad cell or dims. */
RNNCORE_API int64_t rnncore_workspace_size(rnncore_cell cell, const rnncore_dims* dims);
/* Inference forward (args->workspace is ignored). */
RNNCORE_API int rnncore_forward_f32(rnncore_cell cell, const rnncore_dims* dims,
                                    const rnncore_forward_args_f32* args);
RNNCORE_API int rnncore_forward_f64(rnncore_cell cell, const rnncore_dims* dims,
                                    const rnncore_forward_args_f64* args);
/* Training forward: also fills args->workspace (required) for rnncore_backward_*. */
RNNCORE_API int rnncore_training_forward_f32(rnncore_cell cell, const rnncore_dims* dims,
                                             const rnncore_forward_args_f32* args);
RNNCORE_API int rnncore_training_forward_f64(rnncore_cell cell, const rnncore_dims* dims,
                                             const rnncore_forward_args_f64* args);
RNNCORE_API int rnncore_backward_f32(rnncore_cell cell, const rnncore_dims* dims,
                                     const rnncore_backward_args_f32* args);
RNNCORE_API int rnncore_backward_f64(rnncore_cell cell, const rnncore_dims* dims,
                                     const rnncore_backward_args_f64* args);

/* ---- trained models (files written by Python's model.save) ---- */

typedef struct rnncore_model rnncore_model;
typedef struct rnncore_stream rnncore_stream;

/* The model in `path`: a float32 Sequential of the layers the runtime has (SimpleRNN, LSTM,
 * GRU, Bidirectional, Dense, TimeDistributed(Dense), Dropout, Embedding, Masking, Conv1D,
 * LayerNormalization, Flatten; masks as Keras propagates them). Models starting with an
 * Embedding take token ids as floats, one feature per step. NULL and a message on any
 * failure: a missing, damaged or hostile file, another layer. */
RNNCORE_API rnncore_model* rnncore_model_load(const char* path);
RNNCORE_API void rnncore_model_free(rnncore_model* model); /* NULL is ignored */
/* Features per step of the model's input (its last input axis); -1 for NULL. */
RNNCORE_API int64_t rnncore_model_input_features(const rnncore_model* model);
/* The input's steps when the model fixes them, else 0; -1 for NULL. */
RNNCORE_API int64_t rnncore_model_input_steps(const rnncore_model* model);
/* Floats per sample of the output for inputs of `steps` steps; -1 and a message if the model
 * cannot take that many (e.g. not its fixed length). */
RNNCORE_API int64_t rnncore_model_output_size(const rnncore_model* model, int64_t steps);
/* y [batch, output_size(steps)] from x [batch, steps, features], as Python's predict. */
RNNCORE_API int rnncore_model_predict(const rnncore_model* model, const float* x, int64_t batch,
                                      int64_t steps, float* y);

/* A stream runs a causal model (unidirectional recurrent layers, Dense, TimeDistributed,
 * Dropout, Embedding, LayerNormalization, causal Conv1D of stride 1) one step at a time for
 * `batch` rows, keeping the states: y_t is what predict gives at step t. It allocates
 * everything when made and nothing per step, and keeps what it needs of the model (the model
 * may be freed first). NULL and a message for a model that cannot stream (Bidirectional,
 * go_backwards, Flatten, masks). */
RNNCORE_API rnncore_stream* rnncore_model_stream(const rnncore_model* model, int64_t batch);
/* Floats per row of y_t; -1 for NULL. */
RNNCORE_API int64_t rnncore_stream_output_size(const rnncore_stream* stream);
/* One step: x_t [batch, features] in, y_t [batch, stream_output_size] out. */
RNNCORE_API int rnncore_stream_step(rnncore_stream* stream, const float* x_t, float* y_t);
/* Zeroes the states (a new sequence). */
RNNCORE_API void rnncore_stream_reset(rnncore_stream* stream);
RNNCORE_API void rnncore_stream_free(rnncore_stream* stream); /* NULL is ignored */

#ifdef __cplusplus
}
#endif

#endif /* RNNCORE_RNNCORE_H */
