/* berth.trace's hot parts in C: the step wrapper of the daemon's synchronous steps
 * (Step), and after an operation's end its freeze into columns (freeze) and the step
 * histograms' counting (count_spans). Each has its Python counterpart (core.py,
 * metrics.py), which runs when this module was not built (no compiler) or
 * BERTH_NO_EXTENSIONS is set; the unit tests check both give the same.
 *
 * `Step(fn, name, kind, leaf, current)` behaves as the wrapper core._wrapper_source
 * writes for a synchronous, untimed step whose name is a string: outside an operation
 * (the ContextVar `current` holds None, or a cursor whose live list was emptied by the
 * freeze) it calls `fn`; in one, it records the call as a span of the cursor's
 * operation exactly as the Python wrapper does:
 *
 *   a leaf:   appends (name, parent, start, end) at the end of a STEP that returned,
 *             (name, parent, start, end, kind, None, error, -2) otherwise;
 *   else:     appends [name, parent, start, 0, kind, None, "", index] at the start,
 *             makes (live, index, next_index, op) the context's cursor meanwhile, and
 *             fills in the end (and the error's type name) at the end.
 *
 * Why C: in Python a step's span is some thirty bytecodes and a frame; on a create's
 * path of seventeen steps that was most of what tracing cost the request (bench/README.md).
 * Here it is two clock reads, a tuple and an append.
 *
 * Times are CLOCK_MONOTONIC nanoseconds: what time.perf_counter_ns() reads on Linux
 * (CPython's perf counter is its monotonic clock there), so they mix with the spans
 * core.py times in Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <time.h>

#define LEAF_INDEX (-2) /* core._LEAF: no span names a leaf as its parent */

typedef struct {
    PyObject_HEAD
    PyObject *fn;      /* the step function */
    PyObject *name;    /* the span's name (dockerd's name for the step) */
    PyObject *kind;    /* core.STEP, PROCESS, ... */
    PyObject *current; /* core._current, the ContextVar of the cursor */
    PyObject *dict;    /* functools.wraps's __name__, __doc__, __wrapped__, ... */
    int leaf;
    int plain;         /* a leaf of kind STEP: its span is the four-field tuple */
    vectorcallfunc vectorcall;
} StepObject;

static PyObject *empty_str; /* the error field of a span that did not fail */
static PyObject *zero;      /* the end of a span still open */
static PyObject *leaf_index;
static PyObject *step_kind; /* "step", the kind whose leaves are plain */

static inline PyObject *
clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return PyLong_FromLongLong((long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
}

/* Takes the raised exception (left to put back with PyErr_Restore) and gives the name
 * of its type, or NULL. */
static PyObject *
take_error(PyObject **type, PyObject **value, PyObject **tb)
{
    PyErr_Fetch(type, value, tb);
    PyErr_NormalizeException(type, value, tb);
    PyObject *name = *value != NULL ? PyType_GetName(Py_TYPE(*value)) : NULL;
    PyErr_Clear();
    return name;
}

static PyObject *
leaf_call(StepObject *self, PyObject *cur, PyObject *live, PyObject *const *args, size_t nargsf,
          PyObject *kwnames)
{
    PyObject *type = NULL, *value = NULL, *tb = NULL, *error = NULL, *span = NULL;
    PyObject *start = clock_ns();
    if (start == NULL) {
        return NULL;
    }
    PyObject *result = PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
    if (result == NULL) {
        error = take_error(&type, &value, &tb);
    }
    PyObject *end = clock_ns();
    if (end != NULL) {
        if (result != NULL && self->plain) {
            span = PyTuple_Pack(4, self->name, PyTuple_GET_ITEM(cur, 1), start, end);
        }
        else if (result != NULL || error != NULL) {
            span = PyTuple_Pack(8, self->name, PyTuple_GET_ITEM(cur, 1), start, end, self->kind, Py_None,
                                result != NULL ? empty_str : error, leaf_index);
        }
    }
    if (span != NULL) {
        PyList_Append(live, span);
        Py_DECREF(span);
    }
    PyErr_Clear();  /* a span that could not be made is lost, never the call's outcome */
    Py_DECREF(start);
    Py_XDECREF(end);
    Py_XDECREF(error);
    if (result == NULL) {
        PyErr_Restore(type, value, tb);
    }
    return result;
}

static PyObject *
parent_call(StepObject *self, PyObject *cur, PyObject *live, PyObject *const *args, size_t nargsf,
            PyObject *kwnames)
{
    PyObject *next_index = PyTuple_GET_ITEM(cur, 2);
    PyObject *index = PyObject_CallNoArgs(next_index);
    if (index == NULL) {
        return NULL;
    }
    PyObject *span = PyList_New(8);
    PyObject *start = clock_ns();
    PyObject *inner = PyTuple_Pack(4, live, index, next_index, PyTuple_GET_ITEM(cur, 3));
    if (span == NULL || start == NULL || inner == NULL) {
        Py_DECREF(index);
        Py_XDECREF(span);
        Py_XDECREF(start);
        Py_XDECREF(inner);
        return NULL;
    }
    PyList_SET_ITEM(span, 0, Py_NewRef(self->name));
    PyList_SET_ITEM(span, 1, Py_NewRef(PyTuple_GET_ITEM(cur, 1)));
    PyList_SET_ITEM(span, 2, start);
    PyList_SET_ITEM(span, 3, Py_NewRef(zero));
    PyList_SET_ITEM(span, 4, Py_NewRef(self->kind));
    PyList_SET_ITEM(span, 5, Py_NewRef(Py_None));
    PyList_SET_ITEM(span, 6, Py_NewRef(empty_str));
    PyList_SET_ITEM(span, 7, index);  /* the reference taken by next_index() */
    PyObject *token = PyList_Append(live, span) < 0 ? NULL : PyContextVar_Set(self->current, inner);
    Py_DECREF(inner);
    if (token == NULL) {
        Py_DECREF(span);
        return NULL;
    }

    PyObject *type = NULL, *value = NULL, *tb = NULL;
    PyObject *result = PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
    if (result == NULL) {
        PyObject *error = take_error(&type, &value, &tb);
        if (error != NULL) {
            PyList_SetItem(span, 6, error);  /* steals error */
        }
    }
    PyObject *end = clock_ns();
    if (end != NULL) {
        PyList_SetItem(span, 3, end);  /* steals end */
    }
    Py_DECREF(span);
    PyErr_Clear();
    if (PyContextVar_Reset(self->current, token) < 0) {
        /* closed in another context than it was opened in, as core._restore allows */
        PyErr_Clear();
        PyObject *again = PyContextVar_Set(self->current, cur);
        Py_XDECREF(again);
        PyErr_Clear();
    }
    Py_DECREF(token);
    if (result == NULL) {
        PyErr_Restore(type, value, tb);
    }
    return result;
}

static PyObject *
step_vectorcall(StepObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *cur, *result;
    if (PyContextVar_Get(self->current, NULL, &cur) < 0) {
        return NULL;
    }
    /* No operation, or it ended (the freeze emptied its live list): the bare call. */
    if (cur == NULL || !PyTuple_CheckExact(cur) || PyTuple_GET_SIZE(cur) != 4) {
        Py_XDECREF(cur);
        return PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
    }
    PyObject *live = PyTuple_GET_ITEM(cur, 0);
    if (!PyList_CheckExact(live) || PyList_GET_SIZE(live) == 0) {
        Py_DECREF(cur);
        return PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
    }
    if (self->leaf) {
        result = leaf_call(self, cur, live, args, nargsf, kwnames);
    }
    else {
        result = parent_call(self, cur, live, args, nargsf, kwnames);
    }
    Py_DECREF(cur);
    return result;
}

static PyObject *
step_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"fn", "name", "kind", "leaf", "current", NULL};
    PyObject *fn, *name, *kind, *current;
    int leaf;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OUUpO:Step", keywords, &fn, &name, &kind, &leaf,
                                     &current)) {
        return NULL;
    }
    if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "Step: fn must be callable");
        return NULL;
    }
    if (!PyContextVar_CheckExact(current)) {
        PyErr_SetString(PyExc_TypeError, "Step: current must be a ContextVar");
        return NULL;
    }
    StepObject *self = (StepObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->fn = Py_NewRef(fn);
    self->name = Py_NewRef(name);
    self->kind = Py_NewRef(kind);
    self->current = Py_NewRef(current);
    self->dict = NULL;
    self->leaf = leaf;
    int is_step = PyUnicode_Compare(kind, step_kind);
    if (is_step == -1 && PyErr_Occurred()) {
        Py_DECREF(self);
        return NULL;
    }
    self->plain = leaf && is_step == 0;
    self->vectorcall = (vectorcallfunc)step_vectorcall;
    return (PyObject *)self;
}

static int
step_traverse(StepObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fn);
    Py_VISIT(self->current);
    Py_VISIT(self->dict);
    return 0;
}

static int
step_clear(StepObject *self)
{
    Py_CLEAR(self->fn);
    Py_CLEAR(self->name);
    Py_CLEAR(self->kind);
    Py_CLEAR(self->current);
    Py_CLEAR(self->dict);
    return 0;
}

static void
step_dealloc(StepObject *self)
{
    PyObject_GC_UnTrack(self);
    step_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A method when looked up on an instance, as a function is. */
static PyObject *
step_descr_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

static PyObject *
step_repr(StepObject *self)
{
    return PyUnicode_FromFormat("<berth.trace step %R of %R>", self->name, self->fn);
}

static PyMemberDef step_members[] = {
    {"span_name", T_OBJECT, offsetof(StepObject, name), READONLY, "the span's name"},
    {NULL},
};

static PyGetSetDef step_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict},
    {NULL},
};

static PyTypeObject StepType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "berth.trace._speedups.Step",
    .tp_basicsize = sizeof(StepObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
                | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "A synchronous step function recorded as a span (see berth.trace.core.traced).",
    .tp_new = step_new,
    .tp_dealloc = (destructor)step_dealloc,
    .tp_traverse = (traverseproc)step_traverse,
    .tp_clear = (inquiry)step_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(StepObject, vectorcall),
    .tp_dictoffset = offsetof(StepObject, dict),
    .tp_descr_get = step_descr_get,
    .tp_repr = (reprfunc)step_repr,
    .tp_members = step_members,
    .tp_getset = step_getset,
};

/* count_spans(rows, series, bounds): the durations of finished operations' spans into
 * histograms, for berth.trace.metrics. `rows` are operations' columns with the same span
 * names (starts are column 2, ends column 3); series[i] is the [bucket counts, sum ns,
 * count] of span i; `bounds` the buckets' upper bounds in nanoseconds, ascending (a
 * duration d goes to the first bucket whose bound is >= d, past the last one to the +Inf
 * count). A span still open when its operation ended (end before start) is left out. */
#define MAX_BOUNDS 64

/* PyLong_AsLongLongAndOverflow's overflow as an error (its fast path reads the digits;
 * PyLong_AsLongLong goes through a byte array for every int past 2**30). */
static int
as_long_long_failed(int overflow)
{
    if (overflow) {
        PyErr_SetString(PyExc_OverflowError, "count_spans: past 64 bits");
        return 1;
    }
    return 0;
}

static int
add_to_item(PyObject *list, Py_ssize_t i, long long by)
{
    int overflow;
    long long was = PyLong_AsLongLongAndOverflow(PyList_GET_ITEM(list, i), &overflow);
    if ((was == -1 && PyErr_Occurred()) || as_long_long_failed(overflow)) {
        return -1;
    }
    PyObject *now = PyLong_FromLongLong(was + by);
    if (now == NULL) {
        return -1;
    }
    PyList_SetItem(list, i, now);  /* steals now */
    return 0;
}

static PyObject *
count_spans(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0]) || !PyList_Check(args[1]) || !PyTuple_Check(args[2])
            || PyTuple_GET_SIZE(args[2]) > MAX_BOUNDS) {
        PyErr_SetString(PyExc_TypeError, "count_spans(rows: list, series: list, bounds: tuple)");
        return NULL;
    }
    PyObject *rows = args[0], *series = args[1], *bounds_tuple = args[2];
    Py_ssize_t nbounds = PyTuple_GET_SIZE(bounds_tuple), nseries = PyList_GET_SIZE(series);
    long long bounds[MAX_BOUNDS];
    int overflow;
    for (Py_ssize_t j = 0; j < nbounds; j++) {
        bounds[j] = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(bounds_tuple, j), &overflow);
        if ((bounds[j] == -1 && PyErr_Occurred()) || as_long_long_failed(overflow)) {
            return NULL;
        }
    }
    for (Py_ssize_t i = 0; i < nseries; i++) {
        PyObject *h = PyList_GET_ITEM(series, i);
        if (!PyList_Check(h) || PyList_GET_SIZE(h) != 3 || !PyList_Check(PyList_GET_ITEM(h, 0))
                || PyList_GET_SIZE(PyList_GET_ITEM(h, 0)) != nbounds + 1) {
            PyErr_SetString(PyExc_TypeError, "count_spans: a series is [bucket counts, sum, count]");
            return NULL;
        }
    }
    /* per series: its bucket counts, then the sums, then the counts, written back once */
    long long *counts = PyMem_Calloc((size_t)nseries * (size_t)(nbounds + 3) + 1, sizeof(long long));
    if (counts == NULL) {
        return PyErr_NoMemory();
    }
    long long *add_sum = counts + nseries * (nbounds + 1), *add_n = add_sum + nseries;
    Py_ssize_t nrows = PyList_GET_SIZE(rows);
    for (Py_ssize_t r = 0; r < nrows; r++) {
        PyObject *columns = PyList_GET_ITEM(rows, r);
        if (!PyTuple_Check(columns) || PyTuple_GET_SIZE(columns) < 4) {
            PyErr_SetString(PyExc_TypeError, "count_spans: a row is an operation's columns");
            goto fail;
        }
        PyObject *starts = PyTuple_GET_ITEM(columns, 2), *ends = PyTuple_GET_ITEM(columns, 3);
        if (!PyTuple_Check(starts) || !PyTuple_Check(ends) || PyTuple_GET_SIZE(starts) != nseries
                || PyTuple_GET_SIZE(ends) != nseries) {
            PyErr_SetString(PyExc_ValueError, "count_spans: a row's spans are not the series'");
            goto fail;
        }
        for (Py_ssize_t i = 0; i < nseries; i++) {
            int start_overflow, end_overflow;
            long long start = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(starts, i), &start_overflow);
            long long end = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(ends, i), &end_overflow);
            if (((start == -1 || end == -1) && PyErr_Occurred())
                    || as_long_long_failed(start_overflow | end_overflow)) {
                goto fail;
            }
            long long d = end - start;
            if (d < 0) {
                continue;
            }
            Py_ssize_t lo = 0, hi = nbounds;  /* bisect_left(bounds, d) */
            while (lo < hi) {
                Py_ssize_t mid = (lo + hi) / 2;
                if (bounds[mid] < d) {
                    lo = mid + 1;
                }
                else {
                    hi = mid;
                }
            }
            counts[i * (nbounds + 1) + lo]++;
            add_sum[i] += d;
            add_n[i]++;
        }
    }
    for (Py_ssize_t i = 0; i < nseries; i++) {
        if (add_n[i] == 0) {
            continue;
        }
        PyObject *h = PyList_GET_ITEM(series, i);
        PyObject *bucket_counts = PyList_GET_ITEM(h, 0);
        for (Py_ssize_t j = 0; j <= nbounds; j++) {
            long long c = counts[i * (nbounds + 1) + j];
            if (c && add_to_item(bucket_counts, j, c) < 0) {
                goto fail;
            }
        }
        if (add_to_item(h, 1, add_sum[i]) < 0 || add_to_item(h, 2, add_n[i]) < 0) {
            goto fail;
        }
    }
    PyMem_Free(counts);
    Py_RETURN_NONE;
fail:
    PyMem_Free(counts);
    return NULL;
}

/* freeze(spans, width): the spans (lists or tuples, each at most `width` long) as
 * `width` columns, a missing field None, as tuple(itertools.zip_longest(*spans)) makes
 * them; a column holding no object the garbage collector tracks (names, times, indices)
 * is untracked at once, so that the collector never walks the operations the page and
 * the sinks keep. */
static PyObject *
freeze(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "freeze(spans: list, width: int)");
        return NULL;
    }
    PyObject *spans = args[0];
    Py_ssize_t width = PyLong_AsSsize_t(args[1]);
    if (width < 0 || width > 64) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "freeze: width out of range");
        }
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(spans);
    PyObject *columns = PyTuple_New(width);
    if (columns == NULL) {
        return NULL;
    }
    for (Py_ssize_t k = 0; k < width; k++) {
        PyObject *column = PyTuple_New(n);
        if (column == NULL) {
            Py_DECREF(columns);
            return NULL;
        }
        PyTuple_SET_ITEM(columns, k, column);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *span = PyList_GET_ITEM(spans, i);
        PyObject **fields;
        Py_ssize_t size;
        if (PyList_Check(span)) {
            fields = ((PyListObject *)span)->ob_item;
            size = PyList_GET_SIZE(span);
        }
        else if (PyTuple_Check(span)) {
            fields = ((PyTupleObject *)span)->ob_item;
            size = PyTuple_GET_SIZE(span);
        }
        else {
            Py_DECREF(columns);
            PyErr_SetString(PyExc_TypeError, "freeze: a span is a list or a tuple");
            return NULL;
        }
        if (size > width) {
            Py_DECREF(columns);
            PyErr_SetString(PyExc_ValueError, "freeze: a span wider than the columns");
            return NULL;
        }
        for (Py_ssize_t k = 0; k < width; k++) {
            PyTuple_SET_ITEM(PyTuple_GET_ITEM(columns, k), i, Py_NewRef(k < size ? fields[k] : Py_None));
        }
    }
    for (Py_ssize_t k = 0; k < width; k++) {
        PyObject *column = PyTuple_GET_ITEM(columns, k);
        int atomic = 1;
        for (Py_ssize_t i = 0; i < n && atomic; i++) {
            PyObject *item = PyTuple_GET_ITEM(column, i);
            atomic = !PyObject_IS_GC(item);
        }
        if (atomic) {
            PyObject_GC_UnTrack(column);
        }
    }
    return columns;
}

static PyMethodDef speedups_functions[] = {
    {"freeze", (PyCFunction)(void (*)(void))freeze, METH_FASTCALL,
     "freeze(spans, width): the spans as columns (see berth.trace.core._freeze)"},
    {"count_spans", (PyCFunction)(void (*)(void))count_spans, METH_FASTCALL,
     "count_spans(rows, series, bounds): span durations into histograms (see berth.trace.metrics)"},
    {NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "berth.trace._speedups",
    .m_doc = "berth.trace.core's step wrapper in C.",
    .m_size = -1,
    .m_methods = speedups_functions,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (PyType_Ready(&StepType) < 0) {
        return NULL;
    }
    empty_str = PyUnicode_InternFromString("");
    step_kind = PyUnicode_InternFromString("step");
    zero = PyLong_FromLong(0);
    leaf_index = PyLong_FromLong(LEAF_INDEX);
    if (empty_str == NULL || step_kind == NULL || zero == NULL || leaf_index == NULL) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&speedups_module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "Step", (PyObject *)&StepType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
