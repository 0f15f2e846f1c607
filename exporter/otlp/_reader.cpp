// agentslo.exporter.otlp._reader: reads a binary OTLP ExportTraceServiceRequest into the compact rows
// that exporter/otlp/rows.py describes, with protobuf's own generated C++ classes.
//
// The classes are generated at build time by protoc from the official opentelemetry-proto files
// vendored in exporter/otlp/proto/ (setup.py), and the message is parsed into an arena, so no byte
// of protobuf is decoded by hand here. What this file adds is the walk: per span, its ids, name,
// times, status code, number of span events, and only the attributes the mapping reads (the `wanted`
// keys and those starting with `prefix`), as Python values exactly as `semconv.value_of` makes them.
//
// It is a filter, not an authority: a body protobuf does not parse, or a string that is not UTF-8,
// returns None, and the pure-Python reader (`rows.read_message`) decodes the request and names the
// problem. The rows must equal the pure reader's for any request (tests/test_otlp_reader.py).

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <google/protobuf/arena.h>
#include <google/protobuf/stubs/logging.h>

#include <string>
#include <unordered_map>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

namespace {

namespace pb = opentelemetry::proto;

// Strings made once per request and shared: a request repeats the same keys, span names and short
// values (operation and model names, tools, flows) on every span, and one str object each means fewer
// allocations here and hashes computed once where the mapping and the classifier look them up.
// The wanted keys are the caller's own str objects (its `wanted` set: the names the mapping uses).
struct Strings {
    static constexpr size_t MAX_SIZE = 64;  // longer strings (ids, messages) are rarely repeated
    static constexpr size_t MAX_COUNT = 4096;  // per request: a bound on a hostile variety
    std::unordered_map<std::string, PyObject*> made;

    ~Strings() {
        for (auto& entry : made) Py_DECREF(entry.second);
    }
    // A new reference to the str of `s`, or nullptr with an exception set (not UTF-8: UnicodeDecodeError).
    PyObject* get(const std::string& s) {
        if (s.size() > MAX_SIZE) return PyUnicode_DecodeUTF8(s.data(), (Py_ssize_t)s.size(), nullptr);
        auto found = made.find(s);
        if (found != made.end()) {
            Py_INCREF(found->second);
            return found->second;
        }
        PyObject* out = PyUnicode_DecodeUTF8(s.data(), (Py_ssize_t)s.size(), nullptr);
        if (out != nullptr && made.size() < MAX_COUNT) {
            Py_INCREF(out);
            made.emplace(s, out);
        }
        return out;
    }
};

struct Wanted {
    std::unordered_map<std::string, PyObject*> keys;  // borrowed from the caller's set, alive during the call
    std::string prefix;
    Strings* strings;

    // A new reference to the key's str when the key is wanted; nullptr without an exception when it is not.
    PyObject* key(const std::string& key) const {
        auto found = keys.find(key);
        if (found != keys.end()) {
            Py_INCREF(found->second);
            return found->second;
        }
        if (key.compare(0, prefix.size(), prefix) != 0) return nullptr;
        return strings->get(key);
    }
};

// New references, or nullptr with an exception set (a string that is not UTF-8: UnicodeDecodeError).
PyObject* text(const std::string& s, Strings* strings) {
    return strings != nullptr ? strings->get(s) : PyUnicode_DecodeUTF8(s.data(), (Py_ssize_t)s.size(), nullptr);
}
PyObject* bytes(const std::string& s) { return PyBytes_FromStringAndSize(s.data(), (Py_ssize_t)s.size()); }

PyObject* attributes(const google::protobuf::RepeatedPtrField<pb::common::v1::KeyValue>& kvs,
                     const Wanted* wanted, Strings* strings);

// An AnyValue as `semconv.value_of` reads it: str, bool, int, float, bytes, list, dict, or None.
PyObject* value_of(const pb::common::v1::AnyValue& v, Strings* strings) {
    using V = pb::common::v1::AnyValue;
    switch (v.value_case()) {
        case V::kStringValue: return text(v.string_value(), strings);
        case V::kBoolValue: return PyBool_FromLong(v.bool_value());
        case V::kIntValue: return PyLong_FromLongLong(v.int_value());
        case V::kDoubleValue: return PyFloat_FromDouble(v.double_value());
        case V::kBytesValue: return bytes(v.bytes_value());
        case V::kArrayValue: {
            const auto& values = v.array_value().values();
            PyObject* out = PyList_New(values.size());
            if (out == nullptr) return nullptr;
            for (int i = 0; i < values.size(); i++) {
                PyObject* item = value_of(values[i], strings);
                if (item == nullptr) {
                    Py_DECREF(out);
                    return nullptr;
                }
                PyList_SET_ITEM(out, i, item);
            }
            return out;
        }
        case V::kKvlistValue: return attributes(v.kvlist_value().values(), nullptr, strings);
        default: Py_RETURN_NONE;
    }
}

// key -> value of the wanted keys (all keys when `wanted` is null: a kvlist value is kept whole);
// a repeated key keeps its last value, as a Python dict built in order does.
PyObject* attributes(const google::protobuf::RepeatedPtrField<pb::common::v1::KeyValue>& kvs,
                     const Wanted* wanted, Strings* strings) {
    PyObject* out = PyDict_New();
    if (out == nullptr) return nullptr;
    for (const auto& kv : kvs) {
        PyObject* key;
        if (wanted != nullptr) {
            key = wanted->key(kv.key());
            if (key == nullptr) {
                if (PyErr_Occurred()) {
                    Py_DECREF(out);
                    return nullptr;
                }
                continue;  // not wanted
            }
        } else {
            key = text(kv.key(), strings);
        }
        PyObject* value = key != nullptr ? value_of(kv.value(), strings) : nullptr;
        if (value == nullptr || PyDict_SetItem(out, key, value) < 0) {
            Py_XDECREF(key);
            Py_XDECREF(value);
            Py_DECREF(out);
            return nullptr;
        }
        Py_DECREF(key);
        Py_DECREF(value);
    }
    return out;
}

// (resource attributes, resource index, trace id, span id, parent span id, name, start ns, end ns,
// status code, attributes, span events, index of the span in the request)
PyObject* row(const pb::trace::v1::Span& span, Py_ssize_t resource, Py_ssize_t index, const Wanted& wanted) {
    PyObject* name = text(span.name(), wanted.strings);
    if (name == nullptr) return nullptr;
    PyObject* attrs = attributes(span.attributes(), &wanted, wanted.strings);
    if (attrs == nullptr) {
        Py_DECREF(name);
        return nullptr;
    }
    return Py_BuildValue("(ny#y#y#NKKiNin)", resource, span.trace_id().data(),
                         (Py_ssize_t)span.trace_id().size(), span.span_id().data(),
                         (Py_ssize_t)span.span_id().size(), span.parent_span_id().data(),
                         (Py_ssize_t)span.parent_span_id().size(), name,
                         (unsigned long long)span.start_time_unix_nano(),
                         (unsigned long long)span.end_time_unix_nano(), (int)span.status().code(), attrs,
                         span.events_size(), index);
}

PyObject* read(PyObject*, PyObject* args) {
    Py_buffer body;
    PyObject* keys;
    const char* prefix;
    Py_ssize_t prefix_size;
    if (!PyArg_ParseTuple(args, "y*Os#", &body, &keys, &prefix, &prefix_size)) return nullptr;
    Strings strings;
    Wanted wanted;
    wanted.prefix.assign(prefix, prefix_size);
    wanted.strings = &strings;
    PyObject* it = PyObject_GetIter(keys);
    if (it == nullptr) {
        PyBuffer_Release(&body);
        return nullptr;
    }
    // the set's items stay alive while the caller holds the set (for the whole call)
    for (PyObject* key; (key = PyIter_Next(it)) != nullptr; Py_DECREF(key)) {
        Py_ssize_t size;
        const char* data = PyUnicode_AsUTF8AndSize(key, &size);
        if (data != nullptr) wanted.keys.emplace(std::string(data, size), key);
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        PyBuffer_Release(&body);
        return nullptr;
    }

    google::protobuf::Arena arena;
    auto* request = google::protobuf::Arena::CreateMessage<pb::collector::trace::v1::ExportTraceServiceRequest>(&arena);
    bool parsed;
    Py_BEGIN_ALLOW_THREADS  // the body is ours (a bytes object held by the caller) while parsing
    parsed = request->ParseFromArray(body.buf, (int)body.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&body);
    if (!parsed || body.len > INT32_MAX) Py_RETURN_NONE;

    PyObject* resources = PyList_New(0);
    PyObject* rows = PyList_New(0);
    Py_ssize_t index = 0;
    bool ok = resources != nullptr && rows != nullptr;
    for (int r = 0; ok && r < request->resource_spans_size(); r++) {
        const auto& rs = request->resource_spans(r);
        PyObject* resource = attributes(rs.resource().attributes(), &wanted, &strings);
        ok = resource != nullptr && PyList_Append(resources, resource) == 0;
        Py_XDECREF(resource);
        for (const auto& ss : rs.scope_spans()) {
            for (const auto& span : ss.spans()) {
                if (!ok) break;
                PyObject* one = row(span, r, index++, wanted);
                ok = one != nullptr && PyList_Append(rows, one) == 0;
                Py_XDECREF(one);
            }
        }
    }
    if (!ok) {
        Py_XDECREF(resources);
        Py_XDECREF(rows);
        if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {  // the pure reader decides about it
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        return nullptr;
    }
    return Py_BuildValue("(NN)", resources, rows);
}

PyMethodDef methods[] = {
    {"read", read, METH_VARARGS,
     "read(body, wanted, prefix) -> (resources, rows) | None: a binary ExportTraceServiceRequest as "
     "rows (exporter/otlp/rows.py), or None when the pure-Python reader must decide"},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_reader", nullptr, -1, methods};

}  // namespace

int add_mapper(PyObject* module);  // _mapper.cpp

PyMODINIT_FUNC PyInit__reader() {
    GOOGLE_PROTOBUF_VERIFY_VERSION;
    // protobuf logs a line to stderr for every body with a string that is not UTF-8: a sender could
    // fill the log with them. Such a body is declined here and answered 400 by the Python path,
    // which says why; so protobuf's own log lines are dropped.
    google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
    PyObject* out = PyModule_Create(&module);
    if (out != nullptr && add_mapper(out) < 0) Py_CLEAR(out);
    return out;
}
