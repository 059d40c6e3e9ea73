/*
 * hat_shim.c - the native half of core.hat.Upscale.
 *
 * VapourSynth namespaces belong to native plugins, so this small plugin registers the `hat`
 * namespace and hands every call of hat.Upscale to the Python implementation in vs_filter.
 * It links neither libpython nor Python.h: the few Python C API functions it needs are looked
 * up at run time in the host process (VSScript hosts and Python's vapoursynth module have them).
 * In a host without Python it answers with a clear error instead of crashing.
 *
 * Flow of one call:
 *   1. take the GIL and call vs_filter.bridge.bind(), which calls core.hat.InternalBind(func=impl);
 *      VapourSynth's Python bindings wrap `impl` into a VSFunction that InternalBind stores here;
 *   2. release the GIL and call that VSFunction with the caller's arguments;
 *   3. pass on the clip it returns ({"clip": node}), or its error ({"error": message}).
 * It also provides InternalCheck, a pass-through filter that fails frames marked as failed by Python.
 */

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "VapourSynth4.h"

#define HAT_PLUGIN_ID "io.github.hat-plugin.hat"
#define HAT_BRIDGE_MODULE "vs_filter.bridge"
#define HAT_BRIDGE_FUNCTION "bind"

#ifndef HAT_SHIM_HASH
#define HAT_SHIM_HASH "unknown"
#endif
/* The plugin name carries the source hash so that the Python side can tell a stale install. */
#define HAT_PLUGIN_NAME "HAT super-resolution (hat-plugin shim " HAT_SHIM_HASH ")"
/* A frame carrying this property stands for a failed frame; InternalCheck turns it into a frame error. */
#define HAT_ERROR_PROP "HATError"

/* The numbers (tile, overlap, device_index, num_streams, batch, fp16) come through "any", untouched: typed "int",
   VapourSynth itself would truncate tile=2.5 and fail tile="a" with its own ValueError before the filter could
   name the argument. vs_filter/filter.py checks their names and types. */
#define HAT_UPSCALE_ARGS "clip:vnode;model:data:opt;weights:data:opt;device:data:opt;any"

typedef struct PyObjectOpaque PyObject;

/* The Python C API functions used, resolved once from the host process. */
static struct {
    int (*Py_IsInitialized)(void);
    int (*PyGILState_Ensure)(void);
    void (*PyGILState_Release)(int);
    PyObject *(*PyImport_ImportModule)(const char *);
    PyObject *(*PyObject_GetAttrString)(PyObject *, const char *);
    PyObject *(*PyObject_CallObject)(PyObject *, PyObject *);
    PyObject *(*PyObject_Str)(PyObject *);
    const char *(*PyUnicode_AsUTF8)(PyObject *);
    void (*PyErr_Fetch)(PyObject **, PyObject **, PyObject **);
    void (*PyErr_Clear)(void);
    void (*Py_DecRef)(PyObject *);
    int resolved;
} py;

static pthread_once_t py_once = PTHREAD_ONCE_INIT;

/* The VSFunction handed over by InternalBind, read back by the Upscale call on the same thread. */
static _Thread_local VSFunction *bound_impl = NULL;

static void *lookup(const char *name, int *missing) {
    void *sym = dlsym(RTLD_DEFAULT, name);
    if (!sym)
        *missing = 1;
    return sym;
}

static void resolve_python(void) {
    int missing = 0;
    *(void **)&py.Py_IsInitialized = lookup("Py_IsInitialized", &missing);
    *(void **)&py.PyGILState_Ensure = lookup("PyGILState_Ensure", &missing);
    *(void **)&py.PyGILState_Release = lookup("PyGILState_Release", &missing);
    *(void **)&py.PyImport_ImportModule = lookup("PyImport_ImportModule", &missing);
    *(void **)&py.PyObject_GetAttrString = lookup("PyObject_GetAttrString", &missing);
    *(void **)&py.PyObject_CallObject = lookup("PyObject_CallObject", &missing);
    *(void **)&py.PyObject_Str = lookup("PyObject_Str", &missing);
    *(void **)&py.PyUnicode_AsUTF8 = lookup("PyUnicode_AsUTF8", &missing);
    *(void **)&py.PyErr_Fetch = lookup("PyErr_Fetch", &missing);
    *(void **)&py.PyErr_Clear = lookup("PyErr_Clear", &missing);
    *(void **)&py.Py_DecRef = lookup("Py_DecRef", &missing);
    py.resolved = !missing;
}

static const char *python_missing_reason(void) {
    pthread_once(&py_once, resolve_python);
    if (!py.resolved)
        return "hat.Upscale needs Python, and this program has no Python interpreter loaded. Run the script "
               "with vspipe or another VSScript host, or from Python with the vapoursynth module, in the "
               "environment where hat-plugin is installed.";
    if (!py.Py_IsInitialized())
        return "hat.Upscale needs Python, and the Python interpreter in this program is not initialized. Run "
               "the script with vspipe or another VSScript host, or from Python with the vapoursynth module.";
    return NULL;
}

/* Formats the pending Python exception as "what: Type: message" and clears it (GIL held). */
static void format_python_error(const char *what, char *buf, size_t size) {
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    const char *type_name = "error", *message = "";
    PyObject *name_obj = NULL, *str_obj = NULL;

    py.PyErr_Fetch(&type, &value, &tb);
    if (type) {
        name_obj = py.PyObject_GetAttrString(type, "__name__");
        if (name_obj)
            type_name = py.PyUnicode_AsUTF8(name_obj);
    }
    if (value) {
        str_obj = py.PyObject_Str(value);
        if (str_obj)
            message = py.PyUnicode_AsUTF8(str_obj);
    }
    if (!type_name || !message) {
        type_name = "error";
        message = "";
    }
    if (strcmp(type_name, "Error") == 0) /* vapoursynth.Error: our own message, meant for the user as is */
        snprintf(buf, size, "%s: %s", what, message);
    else
        snprintf(buf, size, "%s: %s: %s", what, type_name, message);
    py.PyErr_Clear();
    py.Py_DecRef(name_obj);
    py.Py_DecRef(str_obj);
    py.Py_DecRef(type);
    py.Py_DecRef(value);
    py.Py_DecRef(tb);
}

/* Runs vs_filter.bridge.bind() under the GIL; returns 0 on success, else writes the error to buf. */
static int call_bridge(char *buf, size_t size) {
    int ok = 0;
    int gil = py.PyGILState_Ensure();
    PyObject *module = py.PyImport_ImportModule(HAT_BRIDGE_MODULE);
    PyObject *bind = NULL, *result = NULL;

    if (!module) {
        format_python_error("hat.Upscale: cannot import " HAT_BRIDGE_MODULE " (is hat-plugin installed in the "
                            "Python environment that runs this script?)",
                            buf, size);
        goto done;
    }
    bind = py.PyObject_GetAttrString(module, HAT_BRIDGE_FUNCTION);
    if (!bind) {
        format_python_error("hat.Upscale: " HAT_BRIDGE_MODULE " has no " HAT_BRIDGE_FUNCTION "()", buf, size);
        goto done;
    }
    result = py.PyObject_CallObject(bind, NULL);
    if (!result) {
        format_python_error("hat.Upscale", buf, size);
        goto done;
    }
    ok = 1;
done:
    py.Py_DecRef(result);
    py.Py_DecRef(bind);
    py.Py_DecRef(module);
    py.PyGILState_Release(gil);
    return ok ? 0 : -1;
}

static void drop_bound_impl(const VSAPI *vsapi) {
    if (bound_impl)
        vsapi->freeFunction(bound_impl);
    bound_impl = NULL;
}

static void VS_CC upscale_create(const VSMap *in, VSMap *out, void *user_data, VSCore *core, const VSAPI *vsapi) {
    char error[2048];
    const char *reason = python_missing_reason();
    VSFunction *impl;
    VSMap *result;
    const char *result_error;
    int err = 0;
    (void)user_data;
    (void)core;

    if (reason) {
        vsapi->mapSetError(out, reason);
        return;
    }
    drop_bound_impl(vsapi);
    if (call_bridge(error, sizeof error) != 0) {
        drop_bound_impl(vsapi);
        vsapi->mapSetError(out, error);
        return;
    }
    impl = bound_impl;
    bound_impl = NULL;
    if (!impl) {
        vsapi->mapSetError(out, "hat.Upscale: the Python part did not register its implementation "
                                "(vs_filter and the installed hat shim do not match; run "
                                "`python -m vs_filter install` again)");
        return;
    }

    result = vsapi->createMap();
    vsapi->callFunction(impl, in, result);
    vsapi->freeFunction(impl);
    result_error = vsapi->mapGetError(result);
    if (!result_error)
        result_error = vsapi->mapGetData(result, "error", 0, &err);
    err = 0;
    if (result_error) {
        vsapi->mapSetError(out, result_error);
    } else {
        VSNode *node = vsapi->mapGetNode(result, "clip", 0, &err);
        if (err || !node)
            vsapi->mapSetError(out, "hat.Upscale: the Python implementation returned no clip");
        else
            vsapi->mapConsumeNode(out, "clip", node, maReplace);
    }
    vsapi->freeMap(result);
}

/* Receives the implementation as a VSFunction (wrapped by the Python bindings) for upscale_create. */
static void VS_CC bind_create(const VSMap *in, VSMap *out, void *user_data, VSCore *core, const VSAPI *vsapi) {
    int err = 0;
    VSFunction *func = vsapi->mapGetFunction(in, "func", 0, &err);
    (void)user_data;
    (void)core;
    if (err || !func) {
        vsapi->mapSetError(out, "hat.InternalBind: func is required");
        return;
    }
    drop_bound_impl(vsapi);
    bound_impl = func;
}

/* InternalCheck: passes frames through, and fails a frame that carries HAT_ERROR_PROP with its message.
 * Python frame callbacks cannot fail a frame without a traceback in the message; this gives users just
 * the message. */
static const VSFrame *VS_CC check_get_frame(int n, int activation_reason, void *instance_data, void **frame_data,
                                            VSFrameContext *frame_ctx, VSCore *core, const VSAPI *vsapi) {
    VSNode *node = (VSNode *)instance_data;
    const VSFrame *frame;
    const char *message;
    int err = 0;
    (void)frame_data;
    (void)core;

    if (activation_reason == arInitial) {
        vsapi->requestFrameFilter(n, node, frame_ctx);
        return NULL;
    }
    if (activation_reason != arAllFramesReady)
        return NULL;
    frame = vsapi->getFrameFilter(n, node, frame_ctx);
    message = vsapi->mapGetData(vsapi->getFramePropertiesRO(frame), HAT_ERROR_PROP, 0, &err);
    if (!err && message) {
        vsapi->setFilterError(message, frame_ctx);
        vsapi->freeFrame(frame);
        return NULL;
    }
    return frame;
}

static void VS_CC check_free(void *instance_data, VSCore *core, const VSAPI *vsapi) {
    (void)core;
    vsapi->freeNode((VSNode *)instance_data);
}

static void VS_CC check_create(const VSMap *in, VSMap *out, void *user_data, VSCore *core, const VSAPI *vsapi) {
    VSNode *node = vsapi->mapGetNode(in, "clip", 0, NULL);
    VSFilterDependency dep = {node, rpStrictSpatial};
    (void)user_data;
    vsapi->createVideoFilter(out, "HATCheck", vsapi->getVideoInfo(node), check_get_frame, check_free, fmParallel,
                             &dep, 1, node, core);
}

VS_EXTERNAL_API(void) VapourSynthPluginInit2(VSPlugin *plugin, const VSPLUGINAPI *vspapi) {
    vspapi->configPlugin(HAT_PLUGIN_ID, "hat", HAT_PLUGIN_NAME, VS_MAKE_VERSION(0, 1), VAPOURSYNTH_API_VERSION, 0,
                         plugin);
    vspapi->registerFunction("Upscale", HAT_UPSCALE_ARGS, "clip:vnode;", upscale_create, NULL, plugin);
    vspapi->registerFunction("InternalBind", "func:func;", "", bind_create, NULL, plugin);
    vspapi->registerFunction("InternalCheck", "clip:vnode;", "clip:vnode;", check_create, NULL, plugin);
}
