// agentslo.exporter.otlp._reader.Mapper: the usual binary OTLP trace request, read and mapped in C++
// straight into the events of `POST /v1/events` that `exporter/otlp/mapping.py` would make.
//
// `POST /v1/traces` spent most of its time building a Python row per span and mapping it in Python
// (a note in the trace memory, the ancestry walk, an event dict). Most requests need none of what
// makes the mapping subtle: their traces are new to the exporter, every GenAI span finds its agent
// and flow within the request, and they carry no content and no span events. Such a request is
// read where it lies (protozero, below) and mapped here with the GIL released, into the
// events' JSON, which the `/v1/events` scanner and classifier then count exactly as for that route.
//
// With the events scanner at hand (`Mapper(..., scanner)`, `tally()`), the events are not even
// written: the same emission code (`Request::map`) tells each field to a sink, either the JSON writer
// (`Out`, for `map()`) or the scanner's tally (`Tallied`, through exporter/_scan_api.h), which checks
// and tallies it exactly as `Scanner.scan()` would the JSON. The receiver has `map()` write the JSON
// only when something asks for it (classification refusing the batch: the authoritative path).
//
// It is a filter, not an authority. Whenever a request needs more (a span with events or content,
// invalid or repeated ids, an agent or flow it cannot find, a flow rule, a value that is not a plain
// string, number or boolean, more spans or traces than the trace memory holds), `map()` returns
// None and the Python mapping reads the request. The receiver also sends it there when a trace of the
// request is already in the trace memory (`OtlpReceiver`). tests/test_otlp_mapper.py proves the two
// give the same events and keys on SDK requests, mutated.

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <google/protobuf/stubs/common.h>
#include <protozero/pbf_reader.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../_scan_api.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

namespace {

namespace pb = opentelemetry::proto;
using sv = std::string_view;
using TraceRequest = pb::collector::trace::v1::ExportTraceServiceRequest;

constexpr int MAX_ANCESTRY = 64;  // as mapping.MAX_ANCESTRY
constexpr int STATUS_ERROR = 2;

// The attributes the mapping reads, by slot: the conventions' fixed names first, then the specs'.
enum Fixed {
    OPERATION, AGENT_NAME, SERVICE_NAME, TOOL_NAME, CONVERSATION, RESPONSE_MODEL, REQUEST_MODEL, ERROR_TYPE,
    INPUT_TOKENS, PROMPT_TOKENS, OUTPUT_TOKENS, COMPLETION_TOKENS, INPUT_MESSAGES, OUTPUT_MESSAGES,
    TOOL_ARGUMENTS, TOOL_RESULT, ESCALATION_REQUIRED, FAILURE_MODE, TOOL_OUTCOME, SYNTHETIC, N_FIXED
};
const char* FIXED_NAMES[N_FIXED] = {
    "gen_ai.operation.name", "gen_ai.agent.name", "service.name", "gen_ai.tool.name",
    "gen_ai.conversation.id", "gen_ai.response.model", "gen_ai.request.model", "error.type",
    "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens", "gen_ai.input.messages", "gen_ai.output.messages",
    "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "agent_slo.escalation_required",
    "agent_slo.failure_mode", "agent_slo.tool_outcome", "agent_slo.synthetic"};
constexpr int MAX_SLOTS = 64;

struct Agent {
    std::vector<std::string> task_ops;
    std::vector<int> flow;  // slots of otel.flow_attributes, in order
    int outcome, version, prompt_version, exclude;
    bool rules;
    std::unordered_map<std::string, std::pair<double, double>> prices;  // model → (input, output) per Mtok
};

// The read attribute names in an open-addressing table probed from the name's length and three of its
// bytes (as exporter/_scan.cpp does: hashing every byte of every key was a visible cost).
constexpr size_t TABLE = 512;
inline size_t probe_of(sv name) {
    if (name.empty()) return 0;
    unsigned char a = name[0], b = name[name.size() / 2], c = name[name.size() - 1];
    return (name.size() * 131 + a * 31 + b * 7 + c) % TABLE;
}

struct Slots {
    sv name[TABLE];
    int slot[TABLE];
    Slots() {
        for (size_t i = 0; i < TABLE; i++) slot[i] = -1;
    }
    void add(sv n, int s) {
        size_t i = probe_of(n);
        while (slot[i] >= 0) i = (i + 1) % TABLE;
        name[i] = n;
        slot[i] = s;
    }
    int find(sv n) const {
        for (size_t i = probe_of(n); slot[i] >= 0; i = (i + 1) % TABLE)
            if (name[i] == n) return slot[i];
        return -1;
    }
};

struct Config {
    std::vector<std::string> names;  // slot → attribute name
    Slots slots;
    std::unordered_map<std::string, Agent> agents;
    std::vector<std::string> task_ops;  // of every spec (a span's operation from its name)
    size_t max_spans, max_traces;
    uint64_t seed = 0;  // of the span table's hash (`SpanTable`), drawn at set-up

    int slot(const std::string& name) {
        for (size_t i = 0; i < names.size(); i++)
            if (names[i] == name) return (int)i;
        names.push_back(name);
        return (int)names.size() - 1;
    }
    bool task_op(sv op) const {
        for (const auto& t : task_ops)
            if (op == t) return true;
        return false;
    }
};

bool is_turn(sv op) { return op == "chat" || op == "text_completion" || op == "generate_content"; }

// --- the request, read from its bytes ---
//
// The request is read where it lies, with protozero (Debian: libprotozero-dev), a maintained protobuf
// wire decoder whose values are views into the body: parsing into protobuf's generated classes took
// two thirds of the mapper's time (0.90 of 1.35 ms per 1,000-span request), mostly making a string per
// attribute key and freeing it again. The walk below follows the vendored .proto files, message by
// message, with the field numbers of protobuf's generated classes, and is stricter than protobuf's
// parser, never looser: every string field of every message is checked to be UTF-8 (with protobuf's own
// check), a known field of an unexpected wire type, a singular message field or a oneof given twice
// (which protobuf merges), a group, a value nested deeper than MAX_DEPTH or anything the decoder finds
// malformed declines the request (`Decline`), and the Python path, on protobuf's generated classes,
// decides about it. tests/test_otlp_mapper.py holds the walk to that on damaged and hand-made bodies.

constexpr int MAX_DEPTH = 32;  // of values within values (protobuf's parser stops at 100 messages)

struct Decline {};  // thrown by the walk: the Python path reads the request

// An AnyValue: which of its oneof it holds, and that.
struct Value {
    enum Kind : uint8_t { NONE, STR, BOOL, INT, DOUBLE, ARRAY, KVLIST, BYTES, STRINDEX };
    Kind kind = NONE;
    bool b = false;
    int64_t i = 0;
    double d = 0.0;
    sv s;            // STR, BYTES
    uint32_t n = 0;  // ARRAY, KVLIST: how many values
};

// Values kept for the notes, in chunks that never move (notes point at them).
class Values {
    static constexpr size_t CHUNK = 2048;
    std::vector<std::unique_ptr<Value[]>> chunks_;
    size_t used_ = CHUNK;

public:
    Value* make() {
        if (used_ == CHUNK) {
            chunks_.emplace_back(new Value[CHUNK]);
            used_ = 0;
        }
        return &chunks_.back()[used_++];
    }
};

using Wire = protozero::pbf_wire_type;
using Reader = protozero::pbf_reader;

// protozero reads a tag or a length as a varint of up to ten bytes cut to 32 bits; protobuf's parser
// refuses one of more than five bytes, a tag of more than 32 bits and a length of 2^31 or more: the
// varint where `m` stands is checked before protozero reads it.
void check_prefix(const Reader& m, uint64_t most) {
    protozero::data_view rest = m.data();
    if (rest.size() == 0 || (unsigned char)rest.data()[0] < 0x80) return;  // one byte
    const char* p = rest.data();
    // throws past five bytes (or the body's end): caught as a decline
    if (protozero::decode_varint(&p, rest.data() + std::min<size_t>(rest.size(), 5)) > most) throw Decline{};
}
bool next(Reader& m) {
    check_prefix(m, UINT32_MAX);
    return m.next();
}
void skip(Reader& m) {
    if (m.wire_type() == Wire::length_delimited) check_prefix(m, INT32_MAX);
    m.skip();
}
void expect(const Reader& m, Wire type) {
    if (m.wire_type() != type) throw Decline{};
}
sv view(Reader& m) {
    expect(m, Wire::length_delimited);
    check_prefix(m, INT32_MAX);
    auto v = m.get_view();
    return sv(v.data(), v.size());
}
// A message field's message.
Reader sub(Reader& m) {
    sv v = view(m);
    return Reader(v.data(), v.size());
}
// A proto3 string field: UTF-8, as protobuf's parser requires.
sv text(Reader& m) {
    sv s = view(m);
    if (s.size() > (size_t)INT32_MAX || !google::protobuf::internal::IsStructurallyValidUTF8(s.data(), (int)s.size()))
        throw Decline{};
    return s;
}
uint64_t varint(Reader& m) {
    expect(m, Wire::varint);
    return m.get_uint64();
}
uint64_t fixed64(Reader& m) {
    expect(m, Wire::fixed64);
    return m.get_fixed64();
}
void fixed32(Reader& m) {
    expect(m, Wire::fixed32);
    m.get_fixed32();
}
// A singular message field, once (protobuf merges a second one: the Python path reads that).
Reader once(Reader& m, bool* seen) {
    if (*seen) throw Decline{};
    *seen = true;
    return sub(m);
}

void key_value(Reader m, int depth, sv* key, Value* value);

// common.v1.AnyValue into `out`.
void any_value(Reader m, int depth, Value* out) {
    using F = pb::common::v1::AnyValue;
    if (depth > MAX_DEPTH) throw Decline{};
    bool seen = false;  // a oneof's second value (protobuf keeps the last; rare enough to leave)
    while (next(m)) {
        switch (m.tag()) {
            case F::kStringValueFieldNumber: out->kind = Value::STR; out->s = text(m); break;
            case F::kBoolValueFieldNumber: out->kind = Value::BOOL; out->b = varint(m) != 0; break;
            case F::kIntValueFieldNumber: out->kind = Value::INT; out->i = (int64_t)varint(m); break;
            case F::kDoubleValueFieldNumber: {
                uint64_t bits = fixed64(m);
                out->kind = Value::DOUBLE;
                std::memcpy(&out->d, &bits, 8);
                break;
            }
            case F::kArrayValueFieldNumber:
            case F::kKvlistValueFieldNumber: {
                bool array = m.tag() == F::kArrayValueFieldNumber;
                Reader values = sub(m);
                const uint32_t field = array ? (uint32_t)pb::common::v1::ArrayValue::kValuesFieldNumber
                                             : (uint32_t)pb::common::v1::KeyValueList::kValuesFieldNumber;
                uint32_t n = 0;
                while (next(values)) {
                    if (values.tag() != field) {
                        skip(values);
                        continue;
                    }
                    Value inner;
                    sv ignored;
                    if (array) any_value(sub(values), depth + 1, &inner);
                    else key_value(sub(values), depth + 1, &ignored, &inner);
                    n++;
                }
                out->kind = array ? Value::ARRAY : Value::KVLIST;
                out->n = n;
                break;
            }
            case F::kBytesValueFieldNumber: out->kind = Value::BYTES; out->s = view(m); break;
            case F::kStringValueStrindexFieldNumber: out->kind = Value::STRINDEX; out->i = (int32_t)varint(m); break;
            default: skip(m); continue;
        }
        if (seen) throw Decline{};
        seen = true;
    }
}

// common.v1.KeyValue: its key, and its value into `value`.
void key_value(Reader m, int depth, sv* key, Value* value) {
    using F = pb::common::v1::KeyValue;
    bool seen = false;
    while (next(m)) {
        switch (m.tag()) {
            case F::kKeyFieldNumber: *key = text(m); break;
            case F::kValueFieldNumber: any_value(once(m, &seen), depth, value); break;
            case F::kKeyStrindexFieldNumber: varint(m); break;
            default: skip(m);
        }
    }
}

// The last value of each read attribute (a repeated key keeps its last value, as a dict built in order).
struct Attrs {
    const Value* at[MAX_SLOTS];
    void clear() { std::memset(at, 0, sizeof(at)); }
    // One KeyValue of a repeated attributes field: kept when its key is read, checked either way.
    void add(Reader kv, const Config& c, Values& values) {
        sv key;
        Value value;
        key_value(kv, 0, &key, &value);
        int slot = c.slots.find(key);
        if (slot < 0) return;
        Value* kept = values.make();
        *kept = value;
        at[slot] = kept;
    }
};

// A repeated KeyValue field of a message that is not kept (scope, link): checked only.
void skip_attribute(Reader kv) {
    sv key;
    Value value;
    key_value(kv, 0, &key, &value);
}

// common.v1.InstrumentationScope, checked.
void scope(Reader m) {
    using F = pb::common::v1::InstrumentationScope;
    while (next(m)) {
        switch (m.tag()) {
            case F::kNameFieldNumber:
            case F::kVersionFieldNumber: text(m); break;
            case F::kAttributesFieldNumber: skip_attribute(sub(m)); break;
            case F::kDroppedAttributesCountFieldNumber: varint(m); break;
            default: skip(m);
        }
    }
}

// common.v1.EntityRef, checked.
void entity_ref(Reader m) {
    using F = pb::common::v1::EntityRef;
    while (next(m)) {
        switch (m.tag()) {
            case F::kSchemaUrlFieldNumber:
            case F::kTypeFieldNumber:
            case F::kIdKeysFieldNumber:
            case F::kDescriptionKeysFieldNumber: text(m); break;
            default: skip(m);
        }
    }
}

// trace.v1.Span.Link, checked.
void link(Reader m) {
    using F = pb::trace::v1::Span_Link;
    while (next(m)) {
        switch (m.tag()) {
            case F::kTraceIdFieldNumber:
            case F::kSpanIdFieldNumber: view(m); break;
            case F::kTraceStateFieldNumber: text(m); break;
            case F::kAttributesFieldNumber: skip_attribute(sub(m)); break;
            case F::kDroppedAttributesCountFieldNumber: varint(m); break;
            case F::kFlagsFieldNumber: fixed32(m); break;
            default: skip(m);
        }
    }
}

// What the mapping reads of a span.
struct SpanView {
    sv trace_id, span_id, parent_span_id, name;
    uint64_t start = 0, end = 0;
    int status = 0;
};

// `semconv.first_int`: the first of the keys holding an int ≥ 0.
bool first_int(const Attrs& a, int k1, int k2, int64_t* out) {
    for (int k : {k1, k2}) {
        const Value* v = a.at[k];
        if (v != nullptr && v->kind == Value::INT && v->i >= 0) {
            *out = v->i;
            return true;
        }
    }
    return false;
}

bool is_str(const Value* v) { return v != nullptr && v->kind == Value::STR; }
bool is_none(const Value* v) { return v == nullptr || v->kind == Value::NONE; }

// Python's truth of the value (`a or b`).
bool truthy(const Value* v) {
    if (v == nullptr) return false;
    switch (v->kind) {
        case Value::STR:
        case Value::BYTES: return !v->s.empty();
        case Value::BOOL: return v->b;
        case Value::INT: return v->i != 0;
        case Value::DOUBLE: return v->d != 0.0;
        case Value::ARRAY:
        case Value::KVLIST: return v->n > 0;
        default: return false;
    }
}

struct Note {
    SpanView span;
    int resource, trace;
    Attrs attrs;
    sv op;
    bool has_op;
    int kind;  // 0 other, 1 turn, 2 tool
    const Value* model;  // response or request model (`or`), nullptr for None
    bool has_in, has_out;
    int64_t in, out;
    int parent;  // index of the parent's note in this request, -1 when it is not here
};

// murmur3's 64-bit finalizer: every bit of the input moves every bit of the output (the seeded hash
// of the span table and of the span-key index).
inline uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

struct Trace {
    std::string_view id;
    size_t spans = 0;  // notes of the trace in the request
};

// The request's notes by (trace, span id): open addressing over a table made once per request at
// twice its spans (no allocation per span). Ids come from the sender, so slots are found by a
// seeded hash: a request cannot be made to pile its spans into one run of slots.
struct SpanTable {
    struct Slot {
        uint64_t id;
        int trace, note;  // note -1: empty
    };
    std::vector<Slot> slots;
    size_t mask = 0;
    uint64_t seed = 0;

    void size_for(size_t spans, uint64_t s) {
        size_t capacity = 16;
        while (capacity < 2 * spans) capacity *= 2;
        slots.assign(capacity, Slot{0, 0, -1});
        mask = capacity - 1;
        seed = s;
    }
    size_t home(uint64_t id, int trace) const {
        return (size_t)mix((id ^ seed) + (uint64_t)trace * 0x9E3779B97F4A7C15ULL) & mask;
    }
    // -1 when absent
    int find(uint64_t id, int trace) const {
        for (size_t i = home(id, trace);; i = (i + 1) & mask) {
            const Slot& slot = slots[i];
            if (slot.note < 0) return -1;
            if (slot.id == id && slot.trace == trace) return slot.note;
        }
    }
    // false when the span is there already
    bool add(uint64_t id, int trace, int note) {
        for (size_t i = home(id, trace);; i = (i + 1) & mask) {
            Slot& slot = slots[i];
            if (slot.note < 0) {
                slot = Slot{id, trace, note};
                return true;
            }
            if (slot.id == id && slot.trace == trace) return false;
        }
    }
};

uint64_t id64(sv s) {
    uint64_t v;
    std::memcpy(&v, s.data(), 8);
    return v;
}

// The bytes as lowercase hex digits from `p` on (2 a byte); where they end.
char* hex_digits(char* p, sv bytes) {
    static const char digits[] = "0123456789abcdef";
    for (unsigned char c : bytes) {
        *p++ = digits[c >> 4];
        *p++ = digits[c & 15];
    }
    return p;
}

// --- event sinks: where `Request::map` tells each event, field by field ---

// The fields of the events it makes (the /v1/events format), and their types' names.
enum EventField {
    E_TYPE, E_AGENT, E_FLOW, E_EXCLUDE, E_SESSION, E_TRACE, E_TIME, E_VERSION, E_PROMPT_VERSION, E_MODEL,
    E_OUTCOME, E_DURATION, E_ESCALATION, E_FAILURE_MODE, E_STEPS, E_COST, E_KIND, E_LATENCY, E_TOKENS, E_TOOL,
    N_EVENT_FIELDS
};
const char* EVENT_FIELDS[N_EVENT_FIELDS] = {
    "type", "agent", "flow", "exclude", "session_id", "trace_id", "time", "version", "prompt_version", "model",
    "outcome", "duration_s", "escalation_required", "failure_mode", "steps", "cost_usd", "kind", "latency_s",
    "tokens", "tool"};
const char* EVENT_TYPES[3] = {"task", "turn", "tool_call"};

// The JSON writer: the events as the JSON array `POST /v1/events` takes (`map()`). Every method
// returns false for what JSON cannot say as Python would (bytes, lists, maps, NaN and infinities):
// the Python mapping takes the request.
struct Out {
    std::string json = "[";
    bool first = true;

    void reserve(size_t events) { json.reserve(events * 320); }
    void raw(sv s) { json.append(s.data(), s.size()); }
    void str(sv s) {
        json.push_back('"');
        size_t done = 0;
        for (size_t i = 0; i < s.size(); i++) {
            unsigned char c = (unsigned char)s[i];
            if (c >= 0x20 && c != '"' && c != '\\') continue;
            json.append(s.data() + done, i - done);
            done = i + 1;
            if (c == '"' || c == '\\') {
                json.push_back('\\');
                json.push_back((char)c);
            } else {
                char buf[8];
                std::snprintf(buf, sizeof(buf), "\\u%04x", c);
                json.append(buf, 6);
            }
        }
        json.append(s.data() + done, s.size() - done);
        json.push_back('"');
    }
    bool number(double d) {
        if (!std::isfinite(d)) return false;
        char buf[32];
        auto r = std::to_chars(buf, buf + sizeof(buf), d);
        sv text(buf, r.ptr - buf);
        raw(text);
        if (text.find_first_of(".e") == sv::npos) raw(".0");  // a float stays a float
        return true;
    }
    void integer(long long v) {
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof(buf), v);
        json.append(buf, r.ptr - buf);
    }
    void key(int f) {  // ,"name":
        json.append(",\"", 2);
        raw(EVENT_FIELDS[f]);
        json.append("\":", 2);
    }

    bool begin(int type) {
        raw(first ? "{\"type\":\"" : ",{\"type\":\"");
        first = false;
        raw(EVENT_TYPES[type]);
        json.push_back('"');
        return true;
    }
    bool text(int f, sv s) {
        key(f);
        str(s);
        return true;
    }
    // A scalar attribute value.
    bool value(int f, const Value* v) {
        key(f);
        if (is_none(v)) {
            raw("null");
            return true;
        }
        switch (v->kind) {
            case Value::STR: str(v->s); return true;
            case Value::BOOL: raw(v->b ? "true" : "false"); return true;
            case Value::INT: integer(v->i); return true;
            case Value::DOUBLE: return number(v->d);
            default: return false;
        }
    }
    bool number(int f, double d) {
        key(f);
        return number(d);
    }
    bool integer(int f, long long v) {
        key(f);
        integer(v);
        return true;
    }
    bool hex(int f, sv bytes) {
        key(f);
        size_t at = json.size();
        json.resize(at + 2 * bytes.size() + 2);
        json[at] = '"';
        *hex_digits(&json[at + 1], bytes) = '"';
        return true;
    }
    bool tokens(bool has_in, int64_t in, bool has_out, int64_t out) {
        key(E_TOKENS);
        json.push_back('{');
        if (has_in) {
            json.append("\"input\":");
            integer(in);
        }
        if (has_out) {
            json.append(has_in ? ",\"output\":" : "\"output\":");
            integer(out);
        }
        json.push_back('}');
        return true;
    }
    bool end() {
        json.push_back('}');
        return true;
    }
    void close() { json.push_back(']'); }
};

// The tally: each value goes straight into the events scanner's setters (its C API, `_scan_api.h`),
// which check it as they would check it in the JSON above, and each event is tallied as
// `Scanner.scan()` tallies it. A setter refusing a value declines the request, as the scanner
// refusing the JSON would. The scanner's field ids are resolved once, by the Mapper.
struct Tallied {
    const ScanApi* api;
    ScanTally* t;
    const int* field;  // EventField -> the scanner's field id
    std::unique_ptr<char[]> pool;  // hex ids: the tally keeps views of its texts until `finish`
    size_t used = 0, room = 0;

    void reserve(size_t events) {
        room = events * 64;  // two hex ids (session and trace) of 32 digits per event at most
        pool.reset(new char[room]);
    }
    bool begin(int type) {
        api->start(t);
        return text(E_TYPE, EVENT_TYPES[type]);
    }
    // every text is a string field the walk checked (`text`), a part of one cut at a space, hex or a
    // literal: UTF-8 already
    bool text(int f, sv s) { return api->utf8_text(t, field[f], s.data(), s.size()); }
    bool value(int f, const Value* v) {
        if (is_none(v)) return api->null(t, field[f]);
        switch (v->kind) {
            case Value::STR: return text(f, v->s);
            case Value::BOOL: return api->flag(t, field[f], v->b);
            case Value::INT: return integer(f, v->i);
            case Value::DOUBLE: return number(f, v->d);
            default: return false;
        }
    }
    bool number(int f, double d) { return std::isfinite(d) && api->number(t, field[f], d, false); }
    bool integer(int f, long long v) { return api->number(t, field[f], (double)v, true); }
    bool hex(int f, sv bytes) {
        if (used + 2 * bytes.size() > room) return false;
        char* start = pool.get() + used;
        used = hex_digits(start, bytes) - pool.get();
        return text(f, sv(start, 2 * bytes.size()));
    }
    bool tokens(bool has_in, int64_t in, bool has_out, int64_t out) {
        return api->tokens(t, field[E_TOKENS], ScanCount{has_in, true, has_in ? (double)in : 0.0},
                           ScanCount{has_out, true, has_out ? (double)out : 0.0});
    }
    bool end() { return api->end(t); }
};

struct Request {
    const Config& c;
    Values values;  // of the attributes read, which the notes' and resources' Attrs point at
    std::vector<Attrs> resources;
    std::vector<Note> notes;
    std::vector<Trace> traces;
    std::unordered_map<sv, int> trace_index;
    SpanTable spans;
    std::vector<int> child_start, children;  // each note's children, in request order (made on demand)
    std::string keys;  // of the events made: trace id and span id, 24 bytes each
    long ignored = 0;
    std::vector<int> chain_, below_, todo_;  // reused per span

    explicit Request(const Config& config) : c(config) {}

    const Attrs& resource(const Note& n) const { return resources[n.resource]; }

    // The request's bytes, walked (`Decline` thrown when the Python path must read them): a note per
    // span, in order, and the resources' attributes.
    void read(const char* data, size_t size) {
        notes.reserve(size / 256 + 1);  // grown when the spans are smaller (a note holds no pointer into another)
        Reader request(data, size);
        while (next(request)) {
            if (request.tag() == TraceRequest::kResourceSpansFieldNumber) resource_spans(sub(request));
            else skip(request);
        }
    }
    void resource_spans(Reader m) {
        using F = pb::trace::v1::ResourceSpans;
        int r = (int)resources.size();
        resources.emplace_back();
        resources.back().clear();
        bool seen = false;
        while (next(m)) {
            switch (m.tag()) {
                case F::kResourceFieldNumber: resource(once(m, &seen), resources[r]); break;
                case F::kScopeSpansFieldNumber: scope_spans(sub(m), r); break;
                case F::kSchemaUrlFieldNumber: text(m); break;
                default: skip(m);
            }
        }
    }
    void resource(Reader m, Attrs& attrs) {
        using F = pb::resource::v1::Resource;
        while (next(m)) {
            switch (m.tag()) {
                case F::kAttributesFieldNumber: attrs.add(sub(m), c, values); break;
                case F::kDroppedAttributesCountFieldNumber: varint(m); break;
                case F::kEntityRefsFieldNumber: entity_ref(sub(m)); break;
                default: skip(m);
            }
        }
    }
    void scope_spans(Reader m, int r) {
        using F = pb::trace::v1::ScopeSpans;
        bool seen = false;
        while (next(m)) {
            switch (m.tag()) {
                case F::kScopeFieldNumber: scope(once(m, &seen)); break;
                case F::kSpansFieldNumber: span(sub(m), r); break;
                case F::kSchemaUrlFieldNumber: text(m); break;
                default: skip(m);
            }
        }
    }
    void span(Reader m, int r) {
        using F = pb::trace::v1::Span;
        notes.emplace_back();
        Note& n = notes.back();
        n.resource = r;
        n.attrs.clear();
        bool seen = false;
        while (next(m)) {
            switch (m.tag()) {
                case F::kTraceIdFieldNumber: n.span.trace_id = view(m); break;
                case F::kSpanIdFieldNumber: n.span.span_id = view(m); break;
                case F::kTraceStateFieldNumber: text(m); break;
                case F::kParentSpanIdFieldNumber: n.span.parent_span_id = view(m); break;
                case F::kFlagsFieldNumber: fixed32(m); break;
                case F::kNameFieldNumber: n.span.name = text(m); break;
                case F::kKindFieldNumber: varint(m); break;
                case F::kStartTimeUnixNanoFieldNumber: n.span.start = fixed64(m); break;
                case F::kEndTimeUnixNanoFieldNumber: n.span.end = fixed64(m); break;
                case F::kAttributesFieldNumber: n.attrs.add(sub(m), c, values); break;
                case F::kDroppedAttributesCountFieldNumber:
                case F::kDroppedEventsCountFieldNumber:
                case F::kDroppedLinksCountFieldNumber: varint(m); break;
                case F::kEventsFieldNumber: throw Decline{};  // evaluations, message events
                case F::kLinksFieldNumber: link(sub(m)); break;
                case F::kStatusFieldNumber: n.span.status = status_code(once(m, &seen)); break;
                default: skip(m);
            }
        }
    }
    static int status_code(Reader m) {
        using F = pb::trace::v1::Status;
        int code = 0;
        while (next(m)) {
            switch (m.tag()) {
                case F::kMessageFieldNumber: text(m); break;
                case F::kCodeFieldNumber: code = (int32_t)varint(m); break;  // an open enum: any int32
                default: skip(m);
            }
        }
        return code;
    }

    // Notes of every span, in order (mapping.map_spans' first loop); false declines.
    bool note_all(const char* data, size_t size) {
        read(data, size);
        spans.size_for(notes.size(), c.seed);
        int last = -1;
        for (Note& n : notes) {
            const SpanView& span = n.span;
            sv t = span.trace_id, s = span.span_id;
            static const char zeros[16] = {0};
            if (t.size() != 16 || s.size() != 8 || std::memcmp(t.data(), zeros, 16) == 0 ||
                std::memcmp(s.data(), zeros, 8) == 0)
                return false;  // refused as missing_ids: the Python mapping says so
            const Attrs& a = n.attrs;
            if (a.at[INPUT_MESSAGES] || a.at[OUTPUT_MESSAGES] || a.at[TOOL_ARGUMENTS] || a.at[TOOL_RESULT])
                return false;  // content: a session to assemble
            if (is_str(a.at[OPERATION])) {
                n.op = a.at[OPERATION]->s;
                n.has_op = true;
            } else {
                sv first = span.name.substr(0, span.name.find(' '));
                n.has_op = c.task_op(first) || is_turn(first) || first == "execute_tool";
                if (n.has_op) n.op = first;
            }
            n.model = truthy(a.at[RESPONSE_MODEL]) ? a.at[RESPONSE_MODEL] : a.at[REQUEST_MODEL];
            if (is_none(n.model)) n.model = nullptr;
            n.kind = 0;
            n.has_in = n.has_out = false;
            if (n.has_op && is_turn(n.op)) {
                n.kind = 1;
                n.has_in = first_int(a, INPUT_TOKENS, PROMPT_TOKENS, &n.in);
                n.has_out = first_int(a, OUTPUT_TOKENS, COMPLETION_TOKENS, &n.out);
            } else if (n.has_op && n.op == "execute_tool") {
                n.kind = 2;
            }
            int ti;
            auto found = trace_index.end();
            if (last >= 0 && traces[last].id == t) {
                ti = last;  // a trace's spans usually come together
            } else if ((found = trace_index.find(t)) == trace_index.end()) {
                ti = (int)traces.size();
                traces.emplace_back();
                traces.back().id = t;
                trace_index.emplace(t, ti);
                if (traces.size() > c.max_traces) return false;
            } else {
                ti = found->second;
            }
            last = ti;
            n.trace = ti;
            if (!spans.add(id64(s), ti, (int)(&n - notes.data()))) return false;  // a span twice
            if (++traces[ti].spans > c.max_spans) return false;
        }
        for (Note& n : notes) {
            sv p = n.span.parent_span_id;
            n.parent = -1;
            if (p.size() == 8) {
                n.parent = spans.find(id64(p), n.trace);
            } else if (!p.empty()) {
                return false;  // a parent id of another size: the Python mapping's reading
            }
        }
        return true;
    }

    // `mapping._descendants`: the notes below `root`, in the Python mapping's order (a depth-first
    // walk from the last child, at most as many notes as the trace has: parents may loop).
    void descendants(int root, std::vector<int>& out) {
        if (child_start.empty()) {  // each note's children, in request order, once per request
            child_start.assign(notes.size() + 1, 0);
            for (const Note& n : notes)
                if (n.parent >= 0) child_start[n.parent + 1]++;
            for (size_t i = 0; i < notes.size(); i++) child_start[i + 1] += child_start[i];
            children.resize(child_start.back());
            std::vector<int> filled(child_start.begin(), child_start.end() - 1);
            for (size_t i = 0; i < notes.size(); i++)
                if (notes[i].parent >= 0) children[filled[notes[i].parent]++] = (int)i;
        }
        size_t most = traces[notes[root].trace].spans;
        std::vector<int>& todo = todo_;
        todo.assign(children.begin() + child_start[root], children.begin() + child_start[root + 1]);
        while (!todo.empty() && out.size() < most) {
            int i = todo.back();
            todo.pop_back();
            out.push_back(i);
            todo.insert(todo.end(), children.begin() + child_start[i], children.begin() + child_start[i + 1]);
        }
    }

    const Agent* served(const Value* v, sv* name) const {
        if (!is_str(v)) return nullptr;
        auto found = c.agents.find(std::string(v->s));
        if (found == c.agents.end()) return nullptr;
        *name = found->first;
        return &found->second;
    }

    // `_lookup`: the first of the slots on the nearest note of the chain that has one, else the resource.
    const Value* lookup(const std::vector<int>& chain, const int* keys, int n, const Attrs& res, bool* found) {
        for (int i : chain)
            for (int k = 0; k < n; k++)
                if (notes[i].attrs.at[keys[k]] != nullptr) {
                    *found = true;
                    return notes[i].attrs.at[keys[k]];
                }
        for (int k = 0; k < n; k++)
            if (res.at[keys[k]] != nullptr) {
                *found = true;
                return res.at[keys[k]];
            }
        *found = false;
        return nullptr;
    }

    // One span's event (mapping._map_span), told to `o` (an event sink: the JSON writer `Out` or the
    // scanner's tally `Tallied`); false declines the request.
    template <class Sink>
    bool map(int index, Sink& o) {
        Note& n = notes[index];
        if (!n.has_op || !(c.task_op(n.op) || is_turn(n.op) || n.op == "execute_tool")) {
            ignored++;
            return true;
        }
        const Attrs& res = resource(n);
        // scope: the agent and the chain's notes
        std::vector<int>& chain = chain_;
        chain.clear();
        sv agent;
        const Agent* spec = nullptr;
        const Value* first = nullptr;
        for (int i = index, hops = 0; i >= 0 && hops < MAX_ANCESTRY; i = notes[i].parent, hops++) {
            chain.push_back(i);
            const Value* name = notes[i].attrs.at[AGENT_NAME];
            if (!is_none(name) && spec == nullptr) {
                spec = served(name, &agent);
                if (spec == nullptr && first == nullptr) first = name;
            }
        }
        if (spec == nullptr) {
            // the resource's service.name when served (else the refusal names another: Python's)
            spec = served(res.at[SERVICE_NAME], &agent);
            if (spec == nullptr) return false;  // unknown agent (or one deferred for its ancestors)
        }
        bool found;
        const Value* flow = lookup(chain, spec->flow.data(), (int)spec->flow.size(), res, &found);
        if (is_none(flow)) return false;  // a flow rule, a missing ancestor or no flow: Python decides
        const int exclude_key[1] = {spec->exclude};
        const Value* exclude = lookup(chain, exclude_key, 1, res, &found);
        bool synthetic = false;
        if (is_none(exclude)) {
            const int synthetic_key[1] = {SYNTHETIC};
            const Value* s = lookup(chain, synthetic_key, 1, res, &found);
            synthetic = s != nullptr && s->kind == Value::BOOL && s->b;
        }
        const SpanView& span = n.span;
        const Attrs& a = n.attrs;
        uint64_t start = span.start, end = span.end;
        double duration = end > start ? (double)(end - start) / 1e9 : 0.0;
        int status = span.status;

        std::vector<int>& below = below_;
        below.clear();
        int type;  // 0 task, 1 turn, 2 tool
        bool task_op = false;
        for (const auto& t : spec->task_ops)
            if (n.op == t) task_op = true;
        if (task_op) {
            descendants(index, below);
            const Value* service = res.at[SERVICE_NAME];
            for (int d : below) {
                const Note& m = notes[d];
                if (!m.has_op || !c.task_op(m.op)) continue;
                sv inner_name;
                bool same;
                if (served(m.attrs.at[AGENT_NAME], &inner_name) != nullptr) {
                    same = inner_name == agent;
                } else {
                    same = is_str(service) && service->s == agent;
                }
                if (same) {  // an agent span around another of the same agent: not a task
                    ignored++;
                    return true;
                }
            }
            type = 0;
        } else if (is_turn(n.op)) {
            type = 1;
        } else if (n.op == "execute_tool") {
            type = 2;
        } else {
            ignored++;  // another spec's task operation
            return true;
        }

        if (!o.begin(type) || !o.text(E_AGENT, agent) || !o.value(E_FLOW, flow)) return false;
        if (synthetic) {
            if (!o.text(E_EXCLUDE, "synthetic")) return false;
        } else if (!is_none(exclude)) {
            if (!o.value(E_EXCLUDE, exclude)) return false;
        }
        const Value* conversation = a.at[CONVERSATION];
        if (!(is_none(conversation) ? o.hex(E_SESSION, span.trace_id) : o.value(E_SESSION, conversation)) ||
            !o.hex(E_TRACE, span.trace_id))
            return false;
        if (end > 0 && !o.number(E_TIME, (double)end / 1e9)) return false;
        // _versions
        for (int k : {spec->version, spec->prompt_version})
            if (a.at[k] != nullptr && !o.value(k == spec->version ? E_VERSION : E_PROMPT_VERSION, a.at[k]))
                return false;
        const Value* model = type == 2 ? nullptr : n.model;
        if (model != nullptr && !o.value(E_MODEL, model)) return false;
        if (type == 0) {
            const Value* outcome = a.at[spec->outcome];
            if (!(is_none(outcome) ? o.text(E_OUTCOME, status == STATUS_ERROR ? "failure" : "success")
                                   : o.value(E_OUTCOME, outcome)) ||
                !o.number(E_DURATION, duration))
                return false;
            for (int k : {(int)ESCALATION_REQUIRED, (int)FAILURE_MODE})
                if (a.at[k] != nullptr && !o.value(k == ESCALATION_REQUIRED ? E_ESCALATION : E_FAILURE_MODE, a.at[k]))
                    return false;
            long steps = 0;
            double cost = 0.0;
            bool priced = false;
            const Value* first_model = nullptr;
            for (int d : below) {
                const Note& m = notes[d];
                if (m.kind == 2) steps++;
                if (m.kind != 1) continue;
                steps++;
                if (first_model == nullptr && m.model != nullptr) first_model = m.model;
                if (spec->prices.empty() || !is_str(m.model)) continue;
                auto price = spec->prices.find(std::string(m.model->s));
                if (price == spec->prices.end()) continue;
                double in = m.has_in ? (double)m.in : 0.0, out_tokens = m.has_out ? (double)m.out : 0.0;
                double input = in * price->second.first;
                double output = out_tokens * price->second.second;
                cost += (input + output) / 1e6;
                priced = true;
            }
            if (!o.integer(E_STEPS, steps) || (priced && !o.number(E_COST, cost))) return false;
            if (model == nullptr && first_model != nullptr && !o.value(E_MODEL, first_model)) return false;
        } else if (type == 1) {
            if (!o.text(E_KIND, "turn") || !o.number(E_LATENCY, duration)) return false;
            if ((n.has_in || n.has_out) && !o.tokens(n.has_in, n.in, n.has_out, n.out)) return false;
        } else {
            const Value* tool = a.at[TOOL_NAME];
            if (!is_none(tool)) {
                if (!o.value(E_TOOL, tool)) return false;
            } else {
                sv name = span.name;
                size_t space = name.find(' ');
                sv rest = space == sv::npos ? sv() : name.substr(space + 1);
                if (!o.text(E_TOOL, rest.empty() ? name : rest)) return false;
            }
            const Value* outcome = a.at[TOOL_OUTCOME];
            bool failed = status == STATUS_ERROR || a.at[ERROR_TYPE] != nullptr;
            if (!is_none(outcome) && !is_str(outcome)) return false;  // `outcome not in TOOL_OUTCOMES` of a list...
            if (!(is_none(outcome) ? o.text(E_OUTCOME, failed ? "error" : "ok")
                                   : o.text(E_OUTCOME, outcome->s)) ||
                !o.number(E_LATENCY, duration))
                return false;
        }
        if (!o.end()) return false;
        keys.append(span.trace_id);
        keys.append(span.span_id);
        return true;
    }
};

struct Mapper {
    PyObject_HEAD
    Config* config;
    PyObject* scanner;   // the events scanner `tally()` tallies into, or nullptr
    const ScanApi* api;  // its C API
    PyObject* plans;     // the classifier's plan table `tally()` counts against, or nullptr
    int field[N_EVENT_FIELDS];  // EventField -> the scanner's field id
};

void Mapper_dealloc(Mapper* self) {
    delete self->config;
    Py_XDECREF(self->scanner);
    Py_XDECREF(self->plans);
    Py_TYPE(self)->tp_free(reinterpret_cast<PyObject*>(self));
}

bool utf8(PyObject* o, std::string* out) {
    Py_ssize_t size;
    const char* data = PyUnicode_AsUTF8AndSize(o, &size);
    if (data == nullptr) return false;
    out->assign(data, size);
    return true;
}

bool strings(PyObject* seq, std::vector<std::string>* out) {
    PyObject* fast = PySequence_Fast(seq, "a sequence of str");
    if (fast == nullptr) return false;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
        std::string s;
        if (!utf8(PySequence_Fast_GET_ITEM(fast, i), &s)) {
            Py_DECREF(fast);
            return false;
        }
        out->push_back(s);
    }
    Py_DECREF(fast);
    return true;
}

// The scanner's C API and its field ids for the events made here; false (an exception set) when the
// scanner does not take them all.
bool attach(Mapper* self, PyObject* scanner) {
    const auto* api = static_cast<const ScanApi*>(PyCapsule_Import(SCAN_API_CAPSULE, 0));
    if (api == nullptr) return false;
    if (api->version != SCAN_API_VERSION) {
        PyErr_Format(PyExc_ImportError, "the events scanner's C API is version %d, not %d", api->version,
                     SCAN_API_VERSION);
        return false;
    }
    for (int f = 0; f < N_EVENT_FIELDS; f++) {
        if ((self->field[f] = api->field(scanner, EVENT_FIELDS[f])) >= 0) continue;
        if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "the scanner has no event field %s", EVENT_FIELDS[f]);
        return false;
    }
    for (const char* type : EVENT_TYPES) {
        if (api->kind(scanner, type) >= 0) continue;
        if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "the scanner has no event type %s", type);
        return false;
    }
    Py_XSETREF(self->scanner, Py_NewRef(scanner));
    self->api = api;
    return true;
}

// Mapper({agent: (task_operations, flow_attributes, outcome, version, prompt_version, exclude,
//                 has_flow_rules, {model: (input_per_mtok, output_per_mtok)})}, max_spans, max_traces,
//        scanner=None, plans=None): `plans`, a `Plans` table made for `scanner`, counts what
//        `tally()` tallies when every key has a plan in it
int Mapper_init(Mapper* self, PyObject* args, PyObject* kwds) {
    static const char* kwlist[] = {"agents", "max_spans", "max_traces", "scanner", "plans", nullptr};
    PyObject *agents, *scanner = Py_None, *plans = Py_None;
    Py_ssize_t max_spans, max_traces;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!nn|OO", const_cast<char**>(kwlist), &PyDict_Type, &agents,
                                     &max_spans, &max_traces, &scanner, &plans))
        return -1;
    if (scanner != Py_None && !attach(self, scanner)) return -1;
    if (plans != Py_None) {
        if (self->api == nullptr || !self->api->is_plans(scanner, plans)) {
            PyErr_SetString(PyExc_TypeError, "plans must be a Plans table made for the scanner");
            return -1;
        }
        Py_XSETREF(self->plans, Py_NewRef(plans));
    }
    auto* c = new Config();
    c->max_spans = (size_t)max_spans;
    c->max_traces = (size_t)max_traces;
    std::random_device entropy;
    c->seed = ((uint64_t)entropy() << 32) ^ entropy();
    for (int i = 0; i < N_FIXED; i++) c->names.push_back(FIXED_NAMES[i]);
    PyObject *name, *conf;
    Py_ssize_t pos = 0;
    bool ok = true;
    while (ok && PyDict_Next(agents, &pos, &name, &conf)) {
        PyObject *ops, *flows, *outcome, *version, *prompt, *exclude, *prices;
        int rules;
        Agent a;
        std::string agent;
        ok = utf8(name, &agent) &&
             PyArg_ParseTuple(conf, "OOUUUUpO!", &ops, &flows, &outcome, &version, &prompt, &exclude, &rules,
                              &PyDict_Type, &prices) &&
             strings(ops, &a.task_ops);
        std::vector<std::string> flow_names;
        std::string text[4];
        ok = ok && strings(flows, &flow_names) && utf8(outcome, &text[0]) && utf8(version, &text[1]) &&
             utf8(prompt, &text[2]) && utf8(exclude, &text[3]);
        if (!ok) break;
        for (const auto& f : flow_names) a.flow.push_back(c->slot(f));
        a.outcome = c->slot(text[0]);
        a.version = c->slot(text[1]);
        a.prompt_version = c->slot(text[2]);
        a.exclude = c->slot(text[3]);
        a.rules = rules != 0;
        PyObject *model, *price;
        Py_ssize_t at = 0;
        while (ok && PyDict_Next(prices, &at, &model, &price)) {
            std::string m;
            double in, out;
            ok = utf8(model, &m) && PyArg_ParseTuple(price, "dd", &in, &out);
            if (ok) a.prices[m] = {in, out};
        }
        for (const auto& t : a.task_ops) {
            bool known = false;
            for (const auto& u : c->task_ops) known = known || u == t;
            if (!known) c->task_ops.push_back(t);
        }
        c->agents.emplace(agent, std::move(a));
    }
    if (ok && c->names.size() > MAX_SLOTS) {
        PyErr_SetString(PyExc_ValueError, "too many distinct otel attribute names for the C++ mapper");
        ok = false;
    }
    if (!ok) {
        delete c;
        return -1;
    }
    for (size_t i = 0; i < c->names.size(); i++) c->slots.add(sv(c->names[i]), (int)i);
    delete self->config;
    self->config = c;
    return 0;
}

// Read the request and tell its events to `o`, GIL released (nothing of Python is touched); false
// declines. The body (held until the events are told and tallied) and `r` keep what they point into.
template <class Sink>
bool read(Request& r, const Py_buffer& body, Sink& o) {
    try {
        if (!r.note_all(static_cast<const char*>(body.buf), (size_t)body.len) || r.notes.empty()) return false;
    } catch (const Decline&) {
        return false;
    } catch (const std::exception&) {  // protozero's: a malformed body (or memory: the Python path says)
        return false;
    }
    o.reserve(r.notes.size());
    r.keys.reserve(r.notes.size() * 24);
    for (size_t i = 0; i < r.notes.size(); i++)
        if (!r.map((int)i, o)) return false;
    return true;
}

std::string trace_ids(const Request& r) {
    std::string traces;
    traces.reserve(r.traces.size() * 16);
    for (const auto& t : r.traces) traces.append(t.id);
    return traces;
}

// map(body) -> (events JSON, keys, trace ids, ignored, spans) | None
PyObject* Mapper_map(Mapper* self, PyObject* arg) {
    Py_buffer body;
    if (PyObject_GetBuffer(arg, &body, PyBUF_SIMPLE) < 0) return nullptr;
    if (self->config == nullptr || body.len > INT32_MAX) {
        PyBuffer_Release(&body);
        Py_RETURN_NONE;
    }
    bool ok;
    Request r(*self->config);
    Out out;
    Py_BEGIN_ALLOW_THREADS
    ok = read(r, body, out);
    out.close();
    Py_END_ALLOW_THREADS
    PyObject* mapped = nullptr;
    if (ok) {
        std::string traces = trace_ids(r);  // views into the body
        mapped = Py_BuildValue("(y#y#y#ln)", out.json.data(), (Py_ssize_t)out.json.size(), r.keys.data(),
                               (Py_ssize_t)r.keys.size(), traces.data(), (Py_ssize_t)traces.size(), r.ignored,
                               (Py_ssize_t)r.notes.size());
    }
    PyBuffer_Release(&body);
    if (!ok) Py_RETURN_NONE;
    return mapped;
}

// tally(body) -> (events, reports, counted, keys, trace ids, ignored, spans) | None: what `map()`
// gives, with the events tallied by the scanner (`Scanner.scan()`'s `(events, reports)` of `map()`'s
// JSON) instead of written as JSON, and counted against the plan table when there is one and it
// knows every key (`counted`, else None); None declines, as for `map()`, also when the scanner
// refuses an event.
PyObject* Mapper_tally(Mapper* self, PyObject* arg) {
    if (self->api == nullptr) {
        PyErr_SetString(PyExc_RuntimeError, "tally() needs a Mapper made with a scanner");
        return nullptr;
    }
    Py_buffer body;
    if (PyObject_GetBuffer(arg, &body, PyBUF_SIMPLE) < 0) return nullptr;
    if (self->config == nullptr || body.len > INT32_MAX) {
        PyBuffer_Release(&body);
        Py_RETURN_NONE;
    }
    const ScanApi* api = self->api;
    ScanTally* t = api->begin(self->scanner);
    if (t == nullptr) {
        PyBuffer_Release(&body);
        return nullptr;
    }
    bool ok;
    Request r(*self->config);
    Tallied sink{api, t, self->field, nullptr, 0, 0};
    PyObject* plans = self->plans;
    Py_BEGIN_ALLOW_THREADS
    ok = read(r, body, sink);
    if (ok && plans != nullptr) api->count(t, plans);
    Py_END_ALLOW_THREADS
    // while the body and the pool its texts are in last
    PyObject* scanned = ok ? api->finish(t) : nullptr;
    PyObject* counted = scanned != nullptr ? api->counted(t) : nullptr;
    api->free(t);
    PyObject* out = nullptr;
    if (counted != nullptr) {
        std::string traces = trace_ids(r);
        out = Py_BuildValue("(OONy#y#ln)", PyTuple_GET_ITEM(scanned, 0), PyTuple_GET_ITEM(scanned, 1), counted,
                            r.keys.data(), (Py_ssize_t)r.keys.size(), traces.data(), (Py_ssize_t)traces.size(),
                            r.ignored, (Py_ssize_t)r.notes.size());
    }
    Py_XDECREF(scanned);
    PyBuffer_Release(&body);
    if (!ok) Py_RETURN_NONE;
    return out;
}

PyMethodDef Mapper_methods[] = {
    {"map", (PyCFunction)Mapper_map, METH_O,
     "map(body) -> (events JSON, span keys as 24 bytes each (trace and span id), trace ids as 16 bytes each, spans "
     "ignored, spans) | None when the Python mapping must read the request"},
    {"tally", (PyCFunction)Mapper_tally, METH_O,
     "tally(body) -> (events, scanner reports, counted or None, span keys, trace ids, spans ignored, spans) | None: "
     "map() with the events tallied by the scanner given at construction instead of written as JSON, and counted "
     "against its plan table"},
    {nullptr, nullptr, 0, nullptr}};

PyTypeObject MapperType = {PyVarObject_HEAD_INIT(nullptr, 0)};

// --- SpanIndex: the span keys counted recently (exporter/otlp/seen.py says what and why) ---

constexpr size_t SPAN_KEY = 24, TRACE_ID = 16;
constexpr int GENERATIONS = 4;

template <size_t N>
struct Key {
    uint64_t lane[N / 8];
    bool operator==(const Key& other) const { return std::memcmp(lane, other.lane, N) == 0; }
};

template <size_t N>
Key<N> key_at(const char* data) {
    Key<N> k;
    std::memcpy(k.lane, data, N);
    return k;
}

// A set of N-byte keys: open addressing with linear probing, at most half full, no allocation per key.
// Beside each slot a one-byte tag (0: empty; else 8 bits of the key's hash), as in Swiss tables: a
// probe reads the tags, 1/24 the bytes of the keys, and compares a whole key only when its tag
// matches. A generation's tags (256 KiB at the default bound) stay in the cache where its keys (6 MiB)
// cannot: a new key, the usual case, is filed without reading a key from memory, and a lookup
// touches keys only on a tag's match (1 in 255 occupied slots, or the key itself). The table doubles
// as it fills, so an exporter without OTLP traffic holds ~nothing. Slots are found by a seeded hash of
// the whole key: ids come from senders, so where they land must not be theirs to choose (keys made
// to collide would turn every lookup into a walk).
template <size_t N>
struct Flat {
    std::vector<uint8_t> tags;
    std::vector<Key<N>> slots;
    size_t mask, count = 0;
    uint64_t seed;

    // `capacity`: slots to start with (a power of two)
    Flat(uint64_t s, size_t capacity) : tags(capacity, 0), slots(capacity), mask(capacity - 1), seed(s) {}
    uint64_t hash(const Key<N>& k) const {  // seeded, each lane mixed in
        uint64_t h = seed;
        for (uint64_t lane : k.lane) h = mix(h ^ lane);
        return h;
    }
    static uint8_t tag(uint64_t h) { return (uint8_t)(h >> 56) | (uint8_t)((h >> 56) == 0); }
    void prefetch(uint64_t h) const { __builtin_prefetch(&tags[h & mask]); }
    size_t find(const Key<N>& k, uint64_t h) const {  // the slot holding k, or SIZE_MAX (h: hash(k))
        uint8_t t = tag(h);
        for (size_t i = h & mask; tags[i] != 0; i = (i + 1) & mask)
            if (tags[i] == t && slots[i] == k) return i;
        return SIZE_MAX;
    }
    bool contains(const Key<N>& k) const { return find(k, hash(k)) != SIZE_MAX; }
    bool full() const { return 2 * (count + 1) > slots.size(); }
    // The slot of k, which is filed there if it was not (h: hash(k); the table must not be `full()`).
    size_t file(const Key<N>& k, uint64_t h) {
        uint8_t t = tag(h);
        size_t i = h & mask;
        for (; tags[i] != 0; i = (i + 1) & mask)
            if (tags[i] == t && slots[i] == k) return i;
        tags[i] = t;
        slots[i] = k;
        count++;
        return i;
    }
    void grow() {
        std::vector<uint8_t> old_tags = std::move(tags);
        std::vector<Key<N>> old = std::move(slots);
        tags.assign(2 * old.size(), 0);
        slots = std::vector<Key<N>>(2 * old.size());
        mask = slots.size() - 1;
        count = 0;
        for (size_t j = 0; j < old.size(); j++)
            if (old_tags[j] != 0) file(old[j], hash(old[j]));
    }
    void clear() {
        std::fill(tags.begin(), tags.end(), 0);
        count = 0;
    }
    void insert(const Key<N>& k, uint64_t h) {  // h: hash(k)
        if (full()) grow();
        file(k, h);
    }
};

struct Generation {
    Flat<SPAN_KEY> keys;
    Flat<TRACE_ID> traces;
    double newest = 0.0;
    // A generation starts as large as the one before it grew (1,024 slots each for the first): it
    // fills as fast, and growing it again by doubling moved every key about twice more.
    Generation(uint64_t seed, size_t key_slots, size_t trace_slots)
        : keys(seed, key_slots), traces(seed ^ 0x5bd1e995, trace_slots) {}
};

struct SpanIndex {
    PyObject_HEAD
    std::deque<Generation>* generations;
    Py_ssize_t most, size;
    double horizon;
    uint64_t seed;

    // A new generation to fill: the oldest one's tables emptied when all GENERATIONS are held (no
    // allocation: its 6 MiB of keys were faulted in already, and need no clearing behind empty tags).
    void next_generation(double now) {
        auto& gens = *generations;
        if (gens.size() >= (size_t)GENERATIONS) {
            Generation oldest = std::move(gens.front());
            gens.pop_front();
            oldest.keys.clear();
            oldest.traces.clear();
            gens.push_back(std::move(oldest));
        } else {
            gens.emplace_back(seed, gens.back().keys.slots.size(), gens.back().traces.slots.size());
        }
        gens.back().newest = now;
    }
    void expire(double now) {
        while (generations->size() > 1 && generations->front().newest < now - horizon) generations->pop_front();
    }
    bool has(const Key<SPAN_KEY>& key) const {
        for (const auto& g : *generations)
            if (g.keys.contains(key)) return true;
        return false;
    }
};

void SpanIndex_dealloc(SpanIndex* self) {
    delete self->generations;
    Py_TYPE(self)->tp_free(reinterpret_cast<PyObject*>(self));
}

int SpanIndex_init(SpanIndex* self, PyObject* args, PyObject*) {
    Py_ssize_t most;
    double horizon;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "ndK", &most, &horizon, &seed)) return -1;
    delete self->generations;
    self->most = most;
    self->size = most / GENERATIONS > 0 ? most / GENERATIONS : 1;
    self->horizon = horizon;
    self->seed = seed;
    self->generations = new std::deque<Generation>();
    self->generations->emplace_back(seed, 1024, 1024);
    return 0;
}

// Whether a blob argument holds whole keys of `unit` bytes; if not, a ValueError and the buffer released.
bool whole(Py_buffer* view, size_t unit) {
    if (view->len % (Py_ssize_t)unit == 0) return true;
    PyBuffer_Release(view);
    PyErr_Format(PyExc_ValueError, "keys of %zu bytes each", unit);
    return false;
}

bool blob(PyObject* args, Py_buffer* view, double* now, size_t unit) {
    return PyArg_ParseTuple(args, "y*d", view, now) && whole(view, unit);
}

// add(keys, now): remember counted span keys (24 bytes each) and their traces (the first 16 bytes).
PyObject* SpanIndex_add(SpanIndex* self, PyObject* args) {
    Py_buffer view;
    double now;
    if (!blob(args, &view, &now, SPAN_KEY)) return nullptr;
    const char* data = (const char*)view.buf;
    const char* trace = nullptr;  // the trace id filed last: a request's spans come trace by trace
    // Keys land at random: a block's hashes first, each slot's tag fetched meanwhile, then the block's
    // keys filed. Every generation's keys share the seed, so a hash holds across a new generation.
    constexpr Py_ssize_t BLOCK = 32;
    uint64_t hashes[BLOCK];
    Py_ssize_t n = view.len / (Py_ssize_t)SPAN_KEY;
    for (Py_ssize_t start = 0; start < n; start += BLOCK) {
        Py_ssize_t end = std::min(n, start + BLOCK);
        const Flat<SPAN_KEY>& filling = self->generations->back().keys;
        for (Py_ssize_t j = start; j < end; j++) {
            hashes[j - start] = filling.hash(key_at<SPAN_KEY>(data + j * SPAN_KEY));
            filling.prefetch(hashes[j - start]);
        }
        for (Py_ssize_t j = start; j < end; j++) {
            const char* at = data + j * SPAN_KEY;
            Generation& g = self->generations->back();
            g.keys.insert(key_at<SPAN_KEY>(at), hashes[j - start]);
            if (trace == nullptr || std::memcmp(trace, at, TRACE_ID) != 0) {
                Key<TRACE_ID> id = key_at<TRACE_ID>(at);
                g.traces.insert(id, g.traces.hash(id));
                trace = at;
            }
            g.newest = now;
            if ((Py_ssize_t)g.keys.count >= self->size) {
                self->next_generation(now);
                trace = nullptr;  // the new generation has none of the traces yet
            }
        }
    }
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

// seen(keys, now) -> the indices of the keys counted within the bounds
PyObject* SpanIndex_seen(SpanIndex* self, PyObject* args) {
    Py_buffer view;
    double now;
    if (!blob(args, &view, &now, SPAN_KEY)) return nullptr;
    self->expire(now);
    PyObject* out = PyList_New(0);
    const char* data = (const char*)view.buf;
    for (Py_ssize_t at = 0; out != nullptr && at < view.len; at += SPAN_KEY) {
        if (!self->has(key_at<SPAN_KEY>(data + at))) continue;
        PyObject* i = PyLong_FromSsize_t(at / (Py_ssize_t)SPAN_KEY);
        if (i == nullptr || PyList_Append(out, i) < 0) Py_CLEAR(out);
        Py_XDECREF(i);
    }
    PyBuffer_Release(&view);
    return out;
}

// any_trace_seen(traces, now) -> whether a span of any of these traces (16 bytes each) was counted
PyObject* SpanIndex_any_trace_seen(SpanIndex* self, PyObject* args) {
    Py_buffer view;
    double now;
    if (!blob(args, &view, &now, TRACE_ID)) return nullptr;
    self->expire(now);
    const char* data = (const char*)view.buf;
    bool found = false;
    for (Py_ssize_t at = 0; !found && at < view.len; at += TRACE_ID) {
        Key<TRACE_ID> trace = key_at<TRACE_ID>(data + at);
        for (const auto& g : *self->generations) found = found || g.traces.contains(trace);
    }
    PyBuffer_Release(&view);
    return PyBool_FromLong(found);
}

Py_ssize_t SpanIndex_len(SpanIndex* self) {
    Py_ssize_t n = 0;
    for (const auto& g : *self->generations) n += (Py_ssize_t)g.keys.count;
    return n;
}

PyMethodDef SpanIndex_methods[] = {
    {"add", (PyCFunction)SpanIndex_add, METH_VARARGS, "add(keys, now): remember counted span keys"},
    {"seen", (PyCFunction)SpanIndex_seen, METH_VARARGS, "seen(keys, now) -> indices of those counted"},
    {"any_trace_seen", (PyCFunction)SpanIndex_any_trace_seen, METH_VARARGS,
     "any_trace_seen(traces, now) -> whether a span of one of them was counted"},
    {nullptr, nullptr, 0, nullptr}};

PySequenceMethods SpanIndex_sequence = {(lenfunc)SpanIndex_len};
PyTypeObject SpanIndexType = {PyVarObject_HEAD_INIT(nullptr, 0)};

// --- UnreadTraces: trace id → the request that holds it unread (exporter/otlp/memory.py) ---

// The traces of the requests the C++ mapper read, held unread in the trace memory: a map of 16-byte
// trace ids to a request's serial number, with the span index's tags and seeded hash, and deletion
// by shifting the run back (no tombstones: requests come and go all day). A request's traces come
// and go as one blob of 16 bytes each, so filing ~100 traces costs no Python object per trace.
struct UnreadTraces {
    PyObject_HEAD
    Flat<TRACE_ID>* table;
    std::vector<uint64_t>* serials;  // beside the table's slots

    size_t find(const Key<TRACE_ID>& k) const { return table->find(k, table->hash(k)); }
    void put(const Key<TRACE_ID>& k, uint64_t serial) {
        Flat<TRACE_ID>& t = *table;
        if (t.full()) {  // twice the slots, each serial moved with its key
            std::vector<std::pair<Key<TRACE_ID>, uint64_t>> held;
            held.reserve(t.count);
            for (size_t i = 0; i < t.slots.size(); i++)
                if (t.tags[i] != 0) held.emplace_back(t.slots[i], (*serials)[i]);
            t = Flat<TRACE_ID>(t.seed, 2 * t.slots.size());
            serials->assign(t.slots.size(), 0);
            for (const auto& [key, s] : held) (*serials)[t.file(key, t.hash(key))] = s;
        }
        (*serials)[t.file(k, t.hash(k))] = serial;
    }
    void erase(size_t i) {  // backward shift: each later key of the run that may move closer to home does
        Flat<TRACE_ID>& t = *table;
        t.tags[i] = 0;
        t.count--;
        for (size_t j = (i + 1) & t.mask; t.tags[j] != 0; j = (j + 1) & t.mask) {
            size_t home = t.hash(t.slots[j]) & t.mask;
            // j stays when its home lies cyclically in (i, j]
            bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (stays) continue;
            t.tags[i] = t.tags[j];
            t.slots[i] = t.slots[j];
            (*serials)[i] = (*serials)[j];
            t.tags[j] = 0;
            i = j;
        }
    }
};

void UnreadTraces_dealloc(UnreadTraces* self) {
    delete self->table;
    delete self->serials;
    Py_TYPE(self)->tp_free(reinterpret_cast<PyObject*>(self));
}

int UnreadTraces_init(UnreadTraces* self, PyObject* args, PyObject*) {
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "K", &seed)) return -1;
    delete self->table;
    delete self->serials;
    self->table = new Flat<TRACE_ID>(seed, 1024);
    self->serials = new std::vector<uint64_t>(1024, 0);
    return 0;
}

bool trace_blob(PyObject* args, Py_buffer* view, unsigned long long* serial) {
    bool parsed = serial == nullptr ? PyArg_ParseTuple(args, "y*", view) : PyArg_ParseTuple(args, "y*K", view, serial);
    return parsed && whole(view, TRACE_ID);
}

// any(traces) -> whether one of these trace ids (16 bytes each) is held
PyObject* UnreadTraces_any(UnreadTraces* self, PyObject* args) {
    Py_buffer view;
    if (!trace_blob(args, &view, nullptr)) return nullptr;
    const char* data = (const char*)view.buf;
    bool found = false;
    for (Py_ssize_t at = 0; !found && at < view.len; at += TRACE_ID)
        found = self->find(key_at<TRACE_ID>(data + at)) != SIZE_MAX;
    PyBuffer_Release(&view);
    return PyBool_FromLong(found);
}

// hold(traces, serial): these trace ids are held by request `serial`
PyObject* UnreadTraces_hold(UnreadTraces* self, PyObject* args) {
    Py_buffer view;
    unsigned long long serial;
    if (!trace_blob(args, &view, &serial)) return nullptr;
    const char* data = (const char*)view.buf;
    for (Py_ssize_t at = 0; at < view.len; at += TRACE_ID) self->put(key_at<TRACE_ID>(data + at), serial);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

// drop(traces, serial): forget those of these trace ids that request `serial` still holds
PyObject* UnreadTraces_drop(UnreadTraces* self, PyObject* args) {
    Py_buffer view;
    unsigned long long serial;
    if (!trace_blob(args, &view, &serial)) return nullptr;
    const char* data = (const char*)view.buf;
    for (Py_ssize_t at = 0; at < view.len; at += TRACE_ID) {
        size_t i = self->find(key_at<TRACE_ID>(data + at));
        if (i != SIZE_MAX && (*self->serials)[i] == serial) self->erase(i);
    }
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

// pop(trace_id) -> the serial of the request that held it (and holds it no more), or None
PyObject* UnreadTraces_pop(UnreadTraces* self, PyObject* args) {
    Py_buffer view;
    if (!trace_blob(args, &view, nullptr)) return nullptr;
    if (view.len != (Py_ssize_t)TRACE_ID) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "one trace id of %zu bytes", TRACE_ID);
        return nullptr;
    }
    size_t i = self->find(key_at<TRACE_ID>((const char*)view.buf));
    PyBuffer_Release(&view);
    if (i == SIZE_MAX) Py_RETURN_NONE;
    uint64_t serial = (*self->serials)[i];
    self->erase(i);
    return PyLong_FromUnsignedLongLong(serial);
}

Py_ssize_t UnreadTraces_len(UnreadTraces* self) { return (Py_ssize_t)self->table->count; }

PyMethodDef UnreadTraces_methods[] = {
    {"any", (PyCFunction)UnreadTraces_any, METH_VARARGS, "any(traces) -> whether one of these is held"},
    {"hold", (PyCFunction)UnreadTraces_hold, METH_VARARGS, "hold(traces, serial): held by request serial"},
    {"drop", (PyCFunction)UnreadTraces_drop, METH_VARARGS,
     "drop(traces, serial): forget those request serial still holds"},
    {"pop", (PyCFunction)UnreadTraces_pop, METH_VARARGS,
     "pop(trace_id) -> the serial of the request that held it, now forgotten, or None"},
    {nullptr, nullptr, 0, nullptr}};

PySequenceMethods UnreadTraces_sequence = {(lenfunc)UnreadTraces_len};
PyTypeObject UnreadTracesType = {PyVarObject_HEAD_INIT(nullptr, 0)};

}  // namespace


// Called by the module's init (_reader.cpp): adds the Mapper, SpanIndex and UnreadTraces types.
int add_mapper(PyObject* module) {
    UnreadTracesType.tp_as_sequence = &UnreadTraces_sequence;
    if (add_type(module, &UnreadTracesType, "agentslo.exporter.otlp._reader.UnreadTraces", sizeof(UnreadTraces),
                 (initproc)UnreadTraces_init, (destructor)UnreadTraces_dealloc, UnreadTraces_methods,
                 "UnreadTraces(seed): trace id -> the request holding it unread (otlp/memory.py)") < 0)
        return -1;
    SpanIndexType.tp_as_sequence = &SpanIndex_sequence;
    if (add_type(module, &SpanIndexType, "agentslo.exporter.otlp._reader.SpanIndex", sizeof(SpanIndex),
                 (initproc)SpanIndex_init, (destructor)SpanIndex_dealloc, SpanIndex_methods,
                 "SpanIndex(most, horizon_s, seed): the span keys counted recently (otlp/seen.py)") < 0)
        return -1;
    return add_type(module, &MapperType, "agentslo.exporter.otlp._reader.Mapper", sizeof(Mapper),
                    (initproc)Mapper_init, (destructor)Mapper_dealloc, Mapper_methods,
                    "The usual OTLP trace request mapped to the events JSON of POST /v1/events (_mapper.cpp)");
}
