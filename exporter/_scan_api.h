// The C API of the events scanner (exporter/_scan.cpp), for another extension that makes events
// itself and wants them tallied exactly as `Scanner.scan()` would tally their JSON, without writing
// and re-parsing that JSON (the OTLP mapper, exporter/otlp/_mapper.cpp).
//
// It travels in a PyCapsule, `agentslo.exporter._scan._C_API`:
//
//     auto *api = (const ScanApi *)PyCapsule_Import(SCAN_API_CAPSULE, 0);
//     if (api == nullptr || api->version != SCAN_API_VERSION) ...   // not usable: fall back
//     int flow = api->field(scanner, "flow");                        // once, at set-up
//     ScanTally *t = api->begin(scanner);                            // GIL held; checks the type
//     ... GIL released: per event start(t), the setters, end(t); any false refuses the batch ...
//     api->count(t, plans);                                          // optional, GIL released
//     PyObject *out = api->finish(t);                                // GIL held: (n, reports)
//     PyObject *counted = api->counted(t);                           // GIL held: the counts or None
//     api->free(t);
//
// Every setter runs the checks the JSON path runs on that value (same code), so a refusal means the
// scanner would have refused the JSON too. Between begin and finish nothing touches Python; strings
// handed to `text` must stay alive until `finish`.
#ifndef AGENTSLO_SCAN_API_H
#define AGENTSLO_SCAN_API_H

#include <Python.h>

#include <cstddef>
#include <cstring>

#define SCAN_API_CAPSULE "agentslo.exporter._scan._C_API"
#define SCAN_API_VERSION 3

struct ScanTally;

// One event value of a count field (`steps`, each of `tokens`): present or not, and whether it was
// an integer (a count takes integers only, as the JSON path takes JSON integers only).
struct ScanCount {
    bool has, integral;
    double x;
};

struct ScanApi {
    int version;
    // The field id of an event field name, or -1 (no exception) when the format has no such field.
    int (*field)(PyObject *scanner, const char *name);
    // The index of an event type, or -1 (no exception) when the format has no such type.
    int (*kind)(PyObject *scanner, const char *name);
    // A new tally on `scanner` (GIL held; TypeError and nullptr when it is not a Scanner). The
    // tally holds a reference to the scanner until `free`.
    ScanTally *(*begin)(PyObject *scanner);
    void (*start)(ScanTally *t);  // a new event
    bool (*text)(ScanTally *t, int field, const char *data, size_t size);  // UTF-8 checked
    // `text` for bytes the caller vouches are UTF-8 (protobuf's parser checked every string field),
    // which skips the check: it was ~2% of the CPU of an OTLP span
    bool (*utf8_text)(ScanTally *t, int field, const char *data, size_t size);
    bool (*number)(ScanTally *t, int field, double x, bool integral);
    bool (*flag)(ScanTally *t, int field, bool value);
    bool (*null)(ScanTally *t, int field);
    bool (*tokens)(ScanTally *t, int field, ScanCount input, ScanCount output);
    bool (*end)(ScanTally *t);  // the event's type found by its `type` text, and tallied
    // (events, per-type reports) as Scanner.scan() returns them ((0, []) for no events); GIL held,
    // a new reference (nullptr with an exception on failure).
    PyObject *(*finish)(ScanTally *t);
    void (*free)(ScanTally *t);  // GIL held
    // Whether `plans` is a `Plans` table made for `scanner` (GIL held): what `count` may be given.
    bool (*is_plans)(PyObject *scanner, PyObject *plans);
    // Count the tallied events against the table, after the last `end` and before `finish` (GIL
    // released): false when it declines (a key it has no plan for, ...), and the classifier counts.
    bool (*count)(ScanTally *t, PyObject *plans);
    // What `count` counted, as `Plans` documents it, or None (GIL held; a new reference).
    PyObject *(*counted)(ScanTally *t);
};

// Ready an extension type with the slots both extensions set, and add it to `module` under the last
// part of its dotted name (0, or -1 with an exception). Shared here because both include this file.
static inline int add_type(PyObject *module, PyTypeObject *type, const char *name, Py_ssize_t size,
                           initproc init, destructor dealloc, PyMethodDef *methods, const char *doc) {
    type->tp_name = name;
    type->tp_basicsize = size;
    type->tp_flags = Py_TPFLAGS_DEFAULT;
    type->tp_new = PyType_GenericNew;
    type->tp_init = init;
    type->tp_dealloc = dealloc;
    type->tp_methods = methods;
    type->tp_doc = doc;
    if (PyType_Ready(type) < 0) return -1;
    return PyModule_AddObjectRef(module, strrchr(name, '.') + 1, reinterpret_cast<PyObject *>(type));
}

#endif
