// One pass over the raw bytes of a batch: parse (simdjson On-Demand), check and tally, for speed.
//
// `POST /v1/events` spends most of its time turning JSON into Python objects and then reading them
// back. This scanner reads the JSON array directly and builds only what classification needs: per
// event type, the distinct plan keys (as Python tuples, made once per distinct key), each event's
// key index, number columns with presence masks, the latest usable trace id per key, the latest
// time, the distinct label texts and the latest build labels per agent. `exporter.classify` then
// plans and counts exactly as for the other paths.
//
// It is a filter, not an authority: it checks what the msgspec Structs of `exporter.events` check
// (event types, known and required fields, value types, string lengths, number ranges, RFC 3339
// times), except which values a categorical field allows (the plans check those), and whatever it
// does not like, or does not know for sure, makes `scan()` return None, and the batch takes msgspec
// and then the authoritative validator, which names every problem. So what it counts, msgspec would
// have let through too; a test checks that on mutated batches.
//
// The event format (field names, value kinds, required fields, plan keys, number columns) comes
// from the declaration in `exporter.events`, handed over at construction (`exporter.wire._scanner`),
// so there is no second copy of it here.
//
// Three layers, so that another maker of events can be tallied without JSON: the typed setters of
// `Seen` carry every check on a value (text, number, flag, null, tokens); `read_value` is the
// simdjson adapter that calls them; `ScanTally` tallies each finished event with no Python in
// sight and builds the reports (the only Python objects) at the end. The OTLP mapper
// (`exporter/otlp/_mapper.cpp`) calls the same setters and tally through the C API in
// `_scan_api.h`, exported as the capsule `agentslo.exporter._scan._C_API`, so its events are
// counted exactly as their JSON would be, with the GIL released, and no JSON is written.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <simdjson.h>

#include "_scan_api.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <algorithm>
#include <unordered_map>
#include <unordered_set>
#include <vector>

using namespace simdjson;

namespace {

enum Code { TYPE, CAT, BOOL, ID, TEXT, TIME, FLOAT, COUNT, SCORE, TOKENS };
constexpr int MAX_FIELDS = 64;  // distinct field names over all event types
constexpr int MAX_NUM = 6;      // number columns of one type, tokens included
constexpr int N_TEXT = 3;       // version, prompt_version, model
constexpr size_t TABLE = 1024;  // slots of the field-name table

// Where a field name starts probing: from its length and three of its bytes, which tells the
// format's names apart without hashing every byte (a std::unordered_map was a quarter of the time).
inline size_t slot_of(std::string_view name) {
    if (name.empty()) return 0;
    unsigned char a = name[0], b = name[name.size() / 2], c = name[name.size() - 1];
    return (name.size() * 131 + a * 31 + b * 7 + c) % TABLE;
}

struct Limits {
    Py_ssize_t id_chars, text_chars, trace_chars;
    double max_count;
};

struct Kind {
    std::string name;
    uint64_t allowed = 0, required = 0;
    std::vector<int> key;  // field ids of the plan key, in order
    std::vector<int> num;  // field ids of the number columns, in order
    bool tokens = false;
};

struct State {
    Py_ssize_t m = 0;
    std::unordered_map<std::string, Py_ssize_t> index;  // encoded plan key -> key index
    std::vector<const std::string *> key_of;            // key index -> its encoded key (in `index`)
    std::vector<Py_ssize_t> kid, last;
    std::vector<std::string_view> trace;
    std::vector<double> num[MAX_NUM];
    std::vector<char> mask[MAX_NUM];
    Py_ssize_t present[MAX_NUM] = {};
    std::unordered_set<std::string_view> texts[N_TEXT];
    std::unordered_map<std::string_view, std::string_view> builds[N_TEXT];
    bool any_stamp = false, any_num = false, empty_tokens = false;
    double max_stamp = 0, max_num = 0, min_num = 0;
};

Py_ssize_t code_points(std::string_view s) {
    size_t i = 0, size = s.size();
    uint64_t high = 0;  // ASCII (the usual id) is counted eight bytes at a time
    for (; i + 8 <= size; i += 8) {
        uint64_t word;
        std::memcpy(&word, s.data() + i, 8);
        high |= word;
    }
    for (size_t j = i; j < size; j++) high |= static_cast<unsigned char>(s[j]);
    if (!(high & 0x8080808080808080ULL)) return static_cast<Py_ssize_t>(size);
    Py_ssize_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

bool digits(std::string_view s, size_t at, int count, int *out) {
    int v = 0;
    for (int i = 0; i < count; i++) {
        char c = s[at + i];
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return true;
}

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {  // H. Hinnant's algorithm
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// Epoch seconds of `YYYY-MM-DD(T|t| )HH:MM:SS[.f{1,9}](Z|z|±HH:MM)`, years 1970 to 9999; a narrower
// reading of RFC 3339 than msgspec's (anything else goes to the authoritative path).
bool rfc3339(std::string_view s, double *out) {
    int year, month, day, hour, minute, second;
    if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':') return false;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return false;
    if (!digits(s, 0, 4, &year) || !digits(s, 5, 2, &month) || !digits(s, 8, 2, &day) ||
        !digits(s, 11, 2, &hour) || !digits(s, 14, 2, &minute) || !digits(s, 17, 2, &second))
        return false;
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (year < 1970 || month < 1 || month > 12 || day < 1 ||
        day > month_days[month - 1] + (month == 2 && leap) || hour > 23 || minute > 59 || second > 59)
        return false;
    size_t at = 19;
    double fraction = 0;
    if (s[at] == '.') {
        static const double scale[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
        size_t start = ++at;
        int64_t units = 0;
        while (at < s.size() && s[at] >= '0' && s[at] <= '9' && at - start < 10) units = units * 10 + (s[at++] - '0');
        if (at == start || at - start > 9) return false;
        fraction = static_cast<double>(units) / scale[at - start];
    }
    if (at >= s.size()) return false;  // no offset: not accepted here
    int offset = 0;
    if (s[at] == 'Z' || s[at] == 'z') {
        at++;
    } else if (s[at] == '+' || s[at] == '-') {
        int oh, om;
        if (s.size() - at != 6 || s[at + 3] != ':' || !digits(s, at + 1, 2, &oh) || !digits(s, at + 4, 2, &om) ||
            oh > 23 || om > 59)
            return false;
        offset = (s[at] == '-' ? -1 : 1) * (oh * 3600 + om * 60);
        at += 6;
    } else {
        return false;
    }
    if (at != s.size()) return false;
    *out = static_cast<double>(days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second -
                               offset) +
           fraction;
    return true;
}

PyObject *text(std::string_view s) { return PyUnicode_DecodeUTF8(s.data(), s.size(), nullptr); }

PyObject *bytes_of(const void *data, Py_ssize_t size) {
    return PyBytes_FromStringAndSize(static_cast<const char *>(data), size);
}

}  // namespace

struct Scanner {
    PyObject_HEAD
    std::vector<std::string> *names;  // field id -> name
    std::vector<Code> *codes;         // field id -> kind of value
    std::vector<Kind> *kinds;         // reported in this order
    int16_t *table;                   // field name -> field id, open addressing (see `lookup`)
    ondemand::parser *parser;
    Limits limits;
    int type_field, agent_field, trace_field, time_field, text_fields[N_TEXT], tok_field;
};

namespace {

int lookup(const Scanner *self, std::string_view key) {
    for (size_t h = slot_of(key);; h = (h + 1) % TABLE) {
        int f = self->table[h];
        if (f < 0) return f;
        const std::string &name = (*self->names)[f];
        if (name.size() == key.size() && std::memcmp(name.data(), key.data(), key.size()) == 0) return f;
    }
}

// What one event said, by field id (valid until the next event), through typed setters that carry
// the format's checks on each value: the JSON adapter (`read_value`) and the C API (what the OTLP
// mapper calls, `_scan_api.h`) both set values through them, so each check exists once. A setter
// returns false when the value is not what the field takes, or the event already gave the field.
struct Seen {
    const Scanner *self = nullptr;
    uint64_t present = 0, null = 0;
    std::string_view text[MAX_FIELDS];
    double number[MAX_FIELDS];
    bool flag[MAX_FIELDS];
    bool tok_in, tok_out;
    double tok_in_v, tok_out_v;

    Code code(int f) const { return (*self->codes)[f]; }
    bool mark(int f) {  // false for a field given twice (a JSON parser would keep the last silently)
        uint64_t bit = uint64_t{1} << f;
        if (present & bit) return false;
        present |= bit;
        return true;
    }
    // A count (JSON integer, 0 to the largest count).
    bool count_ok(double x, bool integral) const { return integral && x >= 0 && x <= self->limits.max_count; }

    bool set_null(int f) {
        if (!mark(f)) return false;
        null |= uint64_t{1} << f;
        return code(f) != TYPE;
    }
    // Text for TYPE, CAT, ID, TEXT (lengths in code points) and an RFC 3339 TIME.
    bool set_text(int f, std::string_view s) {
        if (!mark(f)) return false;
        Code c = code(f);
        if (c == TIME) {
            flag[f] = true;  // a stamp, not epoch seconds
            return rfc3339(s, &number[f]);
        }
        if (c != TYPE && c != CAT && c != ID && c != TEXT) return false;
        if (c == ID || c == TEXT) {
            Py_ssize_t n = code_points(s);
            if (n < 1 || n > (c == ID ? self->limits.id_chars : self->limits.text_chars)) return false;
        }
        text[f] = s;
        return true;
    }
    // A number for TIME (epoch seconds), FLOAT (≥ 0), SCORE (0 to 1) and COUNT (`integral` only).
    bool set_number(int f, double x, bool integral) {
        if (!mark(f)) return false;
        switch (code(f)) {
            case TIME:
                flag[f] = false;
                break;
            case FLOAT:
            case SCORE:
                if (!(x >= 0) || (code(f) == SCORE && x > 1)) return false;
                break;
            case COUNT:
                if (!count_ok(x, integral)) return false;
                break;
            default:
                return false;
        }
        number[f] = x;
        return true;
    }
    bool set_flag(int f, bool value) {
        if (!mark(f) || code(f) != BOOL) return false;
        flag[f] = value;
        return true;
    }
    // `tokens {input, output}`, each a count or absent (missing or null).
    bool set_tokens(int f, ScanCount in, ScanCount out) {
        if (!mark(f) || code(f) != TOKENS || (in.has && !count_ok(in.x, in.integral)) ||
            (out.has && !count_ok(out.x, out.integral)))
            return false;
        tok_in = in.has;
        tok_out = out.has;
        tok_in_v = in.x;
        tok_out_v = out.x;
        return true;
    }
};

// A JSON count: a JSON integer (not 1.0) read as unsigned; `integral` false for anything else.
bool read_count(ondemand::value value, ondemand::json_type type, ScanCount *out) {
    ondemand::number_type nt;
    uint64_t x;
    out->has = true;
    out->integral = type == ondemand::json_type::number && !value.get_number_type().get(nt) &&
                    (nt == ondemand::number_type::signed_integer || nt == ondemand::number_type::unsigned_integer) &&
                    !value.get_uint64().get(x);
    out->x = out->integral ? static_cast<double>(x) : 0.0;
    return out->integral;
}

// The simdjson adapter: one field's JSON value, handed to the setter its JSON type calls for.
bool read_value(const Scanner *self, int f, ondemand::value value, Seen &seen) {
    ondemand::json_type type;
    if (value.type().get(type)) return false;
    switch (type) {
        case ondemand::json_type::null:
            return !value.is_null().error() && seen.set_null(f);  // is_null consumes it
        case ondemand::json_type::string: {
            std::string_view s;
            return !value.get_string().get(s) && seen.set_text(f, s);
        }
        case ondemand::json_type::boolean: {
            bool b;
            return !value.get_bool().get(b) && seen.set_flag(f, b);
        }
        case ondemand::json_type::number: {
            if ((*self->codes)[f] == COUNT) {
                ScanCount c;
                return read_count(value, type, &c) && seen.set_number(f, c.x, true);
            }
            double x;
            return !value.get_double().get(x) && seen.set_number(f, x, false);
        }
        case ondemand::json_type::object: {
            ondemand::object obj;
            if ((*self->codes)[f] != TOKENS || value.get_object().get(obj)) return false;
            ScanCount in{false, false, 0.0}, out{false, false, 0.0};
            bool had_in = false, had_out = false;
            for (auto field : obj) {
                std::string_view key;
                ondemand::value v;
                if (field.unescaped_key().get(key) || field.value().get(v)) return false;
                bool is_in = key == "input";
                if ((!is_in && key != "output") || (is_in ? had_in : had_out)) return false;
                (is_in ? had_in : had_out) = true;
                ondemand::json_type t;
                if (v.type().get(t)) return false;
                if (t == ondemand::json_type::null) {
                    if (v.is_null().error()) return false;
                    continue;
                }
                if (!read_count(v, t, is_in ? &in : &out)) return false;
            }
            return seen.set_tokens(f, in, out);
        }
        default:
            return false;
    }
}

// The plan key's encoding (`tally`, `Plans.learn`): a tag per field, then the text and its length
// for strings.
constexpr char KEY_NONE = 'N', KEY_TRUE = 'T', KEY_FALSE = 'F', KEY_TEXT = 'S';

void key_text(std::string &buf, std::string_view t) {
    uint32_t n = static_cast<uint32_t>(t.size());
    buf.push_back(KEY_TEXT);
    buf.append(reinterpret_cast<const char *>(&n), sizeof n);
    buf.append(t);
}

// Tally one event of kind `k` into its state; false when it cannot be vouched for. No Python here:
// a new plan key is kept encoded, and `report` builds its tuple.
bool tally(const Scanner *self, const Kind &k, State &s, const Seen &seen, std::string &buf) {
    if ((seen.present & ~k.allowed) || (k.required & ~(seen.present & ~seen.null))) return false;
    Py_ssize_t i = s.m++;
    if (i == 0) {
        for (size_t j = 0; j < k.num.size() + (k.tokens ? 2 : 0); j++) {
            s.num[j].reserve(256);
            s.mask[j].reserve(256);
        }
    }
    buf.clear();
    for (int f : k.key) {
        uint64_t bit = uint64_t{1} << f;
        if (!(seen.present & bit) || (seen.null & bit)) {
            buf.push_back(KEY_NONE);
        } else if ((*self->codes)[f] == BOOL) {
            buf.push_back(seen.flag[f] ? KEY_TRUE : KEY_FALSE);
        } else {
            key_text(buf, seen.text[f]);
        }
    }
    auto found = s.index.find(buf);
    Py_ssize_t kid;
    if (found != s.index.end()) {
        kid = found->second;
    } else {
        kid = static_cast<Py_ssize_t>(s.last.size());
        s.key_of.push_back(&s.index.emplace(buf, kid).first->first);  // a node's key does not move
        s.last.push_back(-1);
        s.trace.emplace_back();
    }
    s.kid.push_back(kid);
    uint64_t usable = seen.present & ~seen.null;
    int tf = self->trace_field;
    if ((usable >> tf) & 1 && code_points(seen.text[tf]) <= self->limits.trace_chars) {
        s.trace[kid] = seen.text[tf];
        s.last[kid] = i;
    }
    size_t j = 0;
    for (; j < k.num.size(); j++) {
        bool has = (usable >> k.num[j]) & 1;
        s.num[j].push_back(has ? seen.number[k.num[j]] : 0.0);
        s.mask[j].push_back(has);
        s.present[j] += has;
    }
    if (k.tokens) {
        bool has = (usable >> self->tok_field) & 1;
        bool in = has && seen.tok_in, out = has && seen.tok_out;
        s.empty_tokens |= has && !seen.tok_in && !seen.tok_out;
        s.num[j].push_back(in ? seen.tok_in_v : 0.0);
        s.mask[j].push_back(in);
        s.present[j] += in;
        s.num[j + 1].push_back(out ? seen.tok_out_v : 0.0);
        s.mask[j + 1].push_back(out);
        s.present[j + 1] += out;
    }
    int tm = self->time_field;
    if ((usable >> tm) & 1) {
        double x = seen.number[tm];
        if (seen.flag[tm]) {
            if (!s.any_stamp || x > s.max_stamp) s.max_stamp = x;
            s.any_stamp = true;
        } else {
            if (!s.any_num || x > s.max_num) s.max_num = x;
            if (!s.any_num || x < s.min_num) s.min_num = x;
            s.any_num = true;
        }
    }
    bool agent = (usable >> self->agent_field) & 1;
    for (int t = 0; t < N_TEXT; t++) {
        int f = self->text_fields[t];
        if ((usable >> f) & 1) {
            s.texts[t].insert(seen.text[f]);
            if (agent) s.builds[t][seen.text[self->agent_field]] = seen.text[f];
        }
    }
    return true;
}

// The plan key tuple of an encoded key (`tally`).
PyObject *key_tuple(const Kind &k, const std::string &buf) {
    PyObject *key = PyTuple_New(static_cast<Py_ssize_t>(k.key.size()));
    size_t at = 0;
    for (size_t j = 0; key != nullptr && j < k.key.size(); j++) {
        char tag = buf[at++];
        PyObject *v;
        if (tag == KEY_NONE) {
            v = Py_NewRef(Py_None);
        } else if (tag == KEY_TRUE || tag == KEY_FALSE) {
            v = PyBool_FromLong(tag == KEY_TRUE);
        } else {
            uint32_t n;
            std::memcpy(&n, buf.data() + at, sizeof n);
            at += sizeof n;
            v = text(std::string_view(buf.data() + at, n));
            at += n;
        }
        if (v == nullptr) Py_CLEAR(key);
        else PyTuple_SET_ITEM(key, static_cast<Py_ssize_t>(j), v);
    }
    return key;
}

PyObject *report(const Kind &k, State &s) {
    Py_ssize_t m = s.m, nkeys = static_cast<Py_ssize_t>(s.last.size());
    Py_ssize_t nnum = static_cast<Py_ssize_t>(k.num.size()) + (k.tokens ? 2 : 0);
    PyObject *name = text(k.name), *keys = PyList_New(nkeys), *traces = PyList_New(nkeys),
             *numbers = PyTuple_New(nnum), *texts = PyTuple_New(N_TEXT), *builds = PyTuple_New(N_TEXT),
             *out = nullptr;
    if (!name || !keys || !traces || !numbers || !texts || !builds) goto done;
    for (Py_ssize_t j = 0; j < nkeys; j++) {
        PyObject *key = key_tuple(k, *s.key_of[j]);
        if (key == nullptr) goto done;
        PyList_SET_ITEM(keys, j, key);
        PyObject *v = s.last[j] < 0 ? Py_NewRef(Py_None) : text(s.trace[j]);
        if (v == nullptr) goto done;
        PyList_SET_ITEM(traces, j, v);
    }
    for (Py_ssize_t j = 0; j < nnum; j++) {
        PyObject *item;
        if (s.present[j] == 0) {
            item = Py_NewRef(Py_None);
        } else {
            item = Py_BuildValue("(NN)", bytes_of(s.num[j].data(), m * sizeof(double)),
                                 s.present[j] == m ? Py_NewRef(Py_None) : bytes_of(s.mask[j].data(), m));
        }
        if (item == nullptr) goto done;
        PyTuple_SET_ITEM(numbers, j, item);
    }
    for (int t = 0; t < N_TEXT; t++) {
        PyObject *distinct = PyDict_New(), *latest = PyDict_New();
        if (distinct) PyTuple_SET_ITEM(texts, t, distinct);
        if (latest) PyTuple_SET_ITEM(builds, t, latest);
        if (!distinct || !latest) goto done;
        for (std::string_view v : s.texts[t]) {
            PyObject *o = text(v);
            if (o == nullptr || PyDict_SetItem(distinct, o, Py_None) < 0) {
                Py_XDECREF(o);
                goto done;
            }
            Py_DECREF(o);
        }
        for (auto &[agent, value] : s.builds[t]) {
            PyObject *a = text(agent), *v = text(value);
            int bad = !a || !v || PyDict_SetItem(latest, a, v) < 0;
            Py_XDECREF(a);
            Py_XDECREF(v);
            if (bad) goto done;
        }
    }
    // "N" hands over a new reference, "O" takes one of its own
    out = Py_BuildValue("(OnONNOOOO(NONN)O)", name, m, keys, bytes_of(s.kid.data(), m * sizeof(Py_ssize_t)),
                        bytes_of(s.last.data(), nkeys * sizeof(Py_ssize_t)), traces, numbers, texts, builds,
                        s.any_stamp ? PyFloat_FromDouble(s.max_stamp) : Py_NewRef(Py_None), Py_False,
                        s.any_num ? PyFloat_FromDouble(s.max_num) : Py_NewRef(Py_None),
                        s.any_num ? PyFloat_FromDouble(s.min_num) : Py_NewRef(Py_None),
                        s.empty_tokens ? Py_True : Py_False);
done:
    Py_XDECREF(name);
    Py_XDECREF(keys);
    Py_XDECREF(traces);
    Py_XDECREF(numbers);
    Py_XDECREF(texts);
    Py_XDECREF(builds);
    return out;
}

}  // namespace

// The tally of one batch: per-type states and the event being read. Python-free from `start` to
// `end`; `finish` builds the reports (GIL held). Also the C API's opaque `ScanTally`.
struct ScanTally {
    Scanner *scanner;  // a reference is held while the tally lives when made through the C API
    std::vector<State> states;
    Seen seen;
    std::string buf;  // the plan key being encoded, reused per event
    Py_ssize_t n = 0;
    // What `count_tally` counted against a plan table: the table's generation, the counter deltas
    // (slot, amount; each slot once) and the exemplars (slot, trace id; later ones win)
    bool counted = false;
    uint64_t generation = 0;
    std::vector<int64_t> slots;
    std::vector<double> amounts;
    std::vector<std::pair<int64_t, std::string_view>> exemplars;

    explicit ScanTally(Scanner *s) : scanner(s), states(s->kinds->size()) { seen.self = s; }
    void start() { seen.present = seen.null = 0; }
    // The event just read, tallied by the kind its `type` text names; false when it cannot be vouched for.
    bool end() {
        if (!((seen.present >> scanner->type_field) & 1)) return false;
        std::string_view type = seen.text[scanner->type_field];
        const std::vector<Kind> &kinds = *scanner->kinds;
        for (size_t k = 0; k < kinds.size(); k++) {
            if (kinds[k].name == type) {
                if (!tally(scanner, kinds[k], states[k], seen, buf)) return false;
                n++;
                return true;
            }
        }
        return false;
    }
    // (events, per-type reports in kind order); GIL held.
    PyObject *finish() {
        PyObject *reports = PyList_New(0);
        if (reports == nullptr) return nullptr;
        for (size_t k = 0; k < states.size(); k++) {
            if (states[k].m == 0) continue;
            PyObject *r = report((*scanner->kinds)[k], states[k]);
            if (r == nullptr || PyList_Append(reports, r) < 0) {
                Py_XDECREF(r);
                Py_DECREF(reports);
                return nullptr;
            }
            Py_DECREF(r);
        }
        return Py_BuildValue("(nN)", n, reports);
    }
};

static void Scanner_dealloc(Scanner *self) {
    delete self->kinds;
    delete[] self->table;
    delete self->names;
    delete self->codes;
    delete self->parser;
    Py_TYPE(self)->tp_free(reinterpret_cast<PyObject *>(self));
}

static int code_of(const char *name, Code *out) {
    static const struct {
        const char *name;
        Code code;
    } table[] = {{"type", TYPE}, {"name", CAT},      {"flag", BOOL},   {"id", ID},       {"text", TEXT},
                 {"time", TIME}, {"number", FLOAT}, {"count", COUNT}, {"score", SCORE}, {"tokens", TOKENS}};
    for (auto &entry : table)
        if (std::strcmp(entry.name, name) == 0) return *out = entry.code, 0;
    PyErr_Format(PyExc_ValueError, "unknown value kind %s", name);
    return -1;
}

// Scanner(kinds, limits): kinds is a sequence of (name, {field: (value kind, required)}, plan-key
// fields, number fields, has tokens), reported in that order; limits is (most id characters, most
// label characters, most trace characters kept as an exemplar, largest count).
static int Scanner_init(Scanner *self, PyObject *args, PyObject *kwds) {
    static const char *kwlist[] = {"kinds", "limits", nullptr};
    PyObject *kinds;
    if (self->kinds != nullptr) {
        PyErr_SetString(PyExc_RuntimeError, "a Scanner is initialised once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O(nnnd)", const_cast<char **>(kwlist), &kinds,
                                     &self->limits.id_chars, &self->limits.text_chars, &self->limits.trace_chars,
                                     &self->limits.max_count))
        return -1;
    self->kinds = new std::vector<Kind>();
    self->names = new std::vector<std::string>();
    self->codes = new std::vector<Code>();
    self->table = new int16_t[TABLE];
    std::fill(self->table, self->table + TABLE, int16_t{-1});
    self->parser = new ondemand::parser();
    auto field_id = [self](PyObject *name, Code code) -> int {
        const char *s = PyUnicode_AsUTF8(name);
        if (s == nullptr) return -1;
        for (size_t f = 0; f < self->names->size(); f++) {
            if ((*self->names)[f] == s) {
                if ((*self->codes)[f] != code) {
                    PyErr_Format(PyExc_ValueError, "field %s has two kinds of value", s);
                    return -1;
                }
                return static_cast<int>(f);
            }
        }
        if (self->names->size() >= MAX_FIELDS) {
            PyErr_SetString(PyExc_ValueError, "too many field names");
            return -1;
        }
        self->names->emplace_back(s);
        self->codes->push_back(code);
        return static_cast<int>(self->names->size() - 1);
    };
    auto known = [self](const char *name) -> int {
        for (size_t f = 0; f < self->names->size(); f++)
            if ((*self->names)[f] == name) return static_cast<int>(f);
        PyErr_Format(PyExc_ValueError, "no field %s", name);
        return -1;
    };
    PyObject *seq = PySequence_Fast(kinds, "kinds must be a sequence");
    if (seq == nullptr) return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *name, *spec, *key, *num;
        int tokens;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "UO!OOp", &name, &PyDict_Type, &spec, &key, &num,
                              &tokens)) {
            Py_DECREF(seq);
            return -1;
        }
        Kind k;
        Py_ssize_t size;
        const char *chars = PyUnicode_AsUTF8AndSize(name, &size);
        if (chars == nullptr) {
            Py_DECREF(seq);
            return -1;
        }
        k.name.assign(chars, static_cast<size_t>(size));
        k.tokens = tokens;
        self->kinds->push_back(k);
        Kind &kind = self->kinds->back();
        PyObject *fname, *desc;
        Py_ssize_t pos = 0;
        while (PyDict_Next(spec, &pos, &fname, &desc)) {
            const char *code_name;
            int required;
            Code code;
            int f;
            if (!PyArg_ParseTuple(desc, "sp", &code_name, &required) || code_of(code_name, &code) < 0 ||
                (f = field_id(fname, code)) < 0) {
                Py_DECREF(seq);
                return -1;
            }
            kind.allowed |= uint64_t{1} << f;
            if (required) kind.required |= uint64_t{1} << f;
        }
        for (PyObject *list : {key, num}) {
            PyObject *names = PySequence_Fast(list, "field names must be a sequence");
            if (names == nullptr) {
                Py_DECREF(seq);
                return -1;
            }
            for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(names); j++) {
                const char *s = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(names, j));
                int f = s ? known(s) : -1;
                if (f < 0) {
                    Py_DECREF(names);
                    Py_DECREF(seq);
                    return -1;
                }
                (list == key ? kind.key : kind.num).push_back(f);
            }
            Py_DECREF(names);
        }
        if (kind.num.size() + (kind.tokens ? 2 : 0) > MAX_NUM) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "too many number fields");
            return -1;
        }
    }
    Py_DECREF(seq);
    for (size_t f = 0; f < self->names->size(); f++) {
        size_t h = slot_of((*self->names)[f]);
        while (self->table[h] >= 0) h = (h + 1) % TABLE;
        self->table[h] = static_cast<int16_t>(f);
    }
    static const char *text_names[N_TEXT] = {"version", "prompt_version", "model"};
    if ((self->type_field = known("type")) < 0 || (self->agent_field = known("agent")) < 0 ||
        (self->trace_field = known("trace_id")) < 0 || (self->time_field = known("time")) < 0 ||
        (self->tok_field = known("tokens")) < 0)
        return -1;
    for (int t = 0; t < N_TEXT; t++)
        if ((self->text_fields[t] = known(text_names[t])) < 0) return -1;
    return 0;
}

// scan(body) -> (events, per-type reports in kind order), or None when the batch needs the
// authoritative path (not a non-empty JSON array of events the scanner can vouch for).
static PyObject *Scanner_scan(Scanner *self, PyObject *body) {
    char *data;
    Py_ssize_t size;
    if (PyBytes_AsStringAndSize(body, &data, &size) < 0) return nullptr;
    padded_string json(data, static_cast<size_t>(size));
    ondemand::document doc;
    ondemand::array events;
    if (self->parser->iterate(json).get(doc) || doc.get_array().get(events)) Py_RETURN_NONE;
    ScanTally t(self);
    for (auto element : events) {
        ondemand::object event;
        if (element.get_object().get(event)) Py_RETURN_NONE;
        t.start();
        for (auto field : event) {
            std::string_view key;
            ondemand::value value;
            if (field.unescaped_key().get(key) || field.value().get(value)) Py_RETURN_NONE;
            int f = lookup(self, key);
            if (f < 0 || !read_value(self, f, value, t.seen)) Py_RETURN_NONE;
        }
        if (!t.end()) Py_RETURN_NONE;
    }
    if (t.n == 0 || doc.current_location().error() != OUT_OF_BOUNDS) Py_RETURN_NONE;  // trailing content
    return t.finish();
}

static PyMethodDef Scanner_methods[] = {
    {"scan", reinterpret_cast<PyCFunction>(Scanner_scan), METH_O,
     "scan(body) -> (events, per-type reports), or None when the batch needs the authoritative path"},
    {nullptr, nullptr, 0, nullptr},
};

static PyTypeObject ScannerType = {PyVarObject_HEAD_INIT(nullptr, 0)};

// --- the plan table: counting the usual batch here, with no Python (`exporter.classify`) ---
//
// `exporter.classify` turns a batch's reports into counter deltas with its plans (`Planner`): per
// event, the plan of its key says which counters it increments, which histogram each number goes to
// and which SLO thresholds it is compared with. A `Plans` table holds the plans the classifier has
// taught it (`learn`), by encoded key, so that a tally whose keys all have one is counted here, GIL
// released (the OTLP mapper's workers), into exactly what `Classifier._count` would gather: the
// same slots, each slot's weighted amounts added in the same order, so a lone batch's totals are
// the same to the last bit. Whatever it does not know for sure (a key it was not taught, as the plans
// of judges and synthetic runs never are; a value out of range; plans of one type that disagree on
// a histogram) makes it decline, and the classifier counts the batch as before. The classifier `forget`s the table whenever plans are
// taken back (a refused batch's rollback); the generation a count was made with tells the
// classifier whether it may still use it.

namespace {

struct PlanNum {
    int64_t base = -1;  // histogram base slot; -1: the plan has no histogram for this column
    int family = -1;    // index of its bucket bounds in `Table::bounds`
    std::vector<std::array<int64_t, 3>> slos;  // (threshold bucket index, good slot, bad slot)
};

struct PlanRow {
    std::vector<int64_t> incs, exemplars;
    PlanNum num[MAX_NUM];
    int64_t tokens[2] = {-1, -1};
};

struct Table {
    std::shared_mutex mu;  // workers count under a shared lock; learn and forget take it alone
    std::vector<std::unordered_map<std::string, int32_t>> index;  // per kind: encoded key -> row
    std::vector<PlanRow> rows;
    std::vector<std::vector<double>> bounds;
    std::vector<std::array<double, MAX_NUM>> upper;  // per kind and number column (+inf: none)
    std::vector<char> countable;                     // per kind
    uint64_t generation = 0;
    int64_t slots = 0;  // one more than the largest slot a row names
};

// Per counting thread: amounts by slot, reset after each count through `touched`.
struct Scratch {
    std::vector<int64_t> ones;
    std::vector<double> weighted;
    std::vector<char> seen;
    std::vector<int64_t> touched;

    void fit(int64_t size) {
        if (static_cast<int64_t>(ones.size()) < size) {
            ones.resize(size);
            weighted.resize(size);
            seen.resize(size);
        }
    }
    void touch(int64_t slot) {
        if (!seen[slot]) {
            seen[slot] = 1;
            touched.push_back(slot);
        }
    }
    void one(int64_t slot) {
        touch(slot);
        ones[slot]++;
    }
    void add(int64_t slot, double x) {
        touch(slot);
        weighted[slot] += x;
    }
};

// A trace id that may be shown as an exemplar: `exporter.classify.EXEMPLAR_ID`, [\w.:/+=@-]+ in ASCII.
bool exemplar_id(std::string_view s) {
    if (s.empty()) return false;
    for (unsigned char c : s) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '.' || c == ':' || c == '/' || c == '+' || c == '=' || c == '@' || c == '-';
        if (!ok) return false;
    }
    return true;
}

// The rows of one kind's keys, when every key has one and the columns can be counted as the
// classifier would; false declines.
bool rows_of(const Table &tab, size_t k, const Kind &kind, const State &s, std::vector<const PlanRow *> &rows) {
    if (!tab.countable[k]) return false;
    const auto &index = tab.index[k];
    rows.clear();
    for (const std::string *key : s.key_of) {
        auto found = index.find(*key);
        if (found == index.end()) return false;
        rows.push_back(&tab.rows[found->second]);
    }
    size_t nnum = kind.num.size(), ncol = nnum + (kind.tokens ? 2 : 0);
    for (size_t c = 0; c < ncol; c++) {
        if (s.present[c] == 0) continue;
        double upper = tab.upper[k][c];
        for (Py_ssize_t i = 0; i < s.m; i++) {
            double x = s.num[c][i];
            if (s.mask[c][i] && !(std::isfinite(x) && x <= upper)) return false;
        }
        for (const PlanRow *r : rows) {
            if (c < nnum) {  // a histogram in every plan or none, with the same bounds
                const PlanNum &n = r->num[c], &first = rows[0]->num[c];
                if ((n.base < 0) != (first.base < 0) || n.family != first.family) return false;
            } else if (r->tokens[c - nnum] < 0) {
                return false;
            }
        }
    }
    return true;
}

// Count a finished tally against the table (GIL released): what `Classifier._count` gathers for
// each of its reports, summed per slot. False, with nothing kept, when it declines.
bool count_tally(ScanTally *t, Table &tab) {
    static thread_local Scratch sc;
    std::shared_lock lock(tab.mu);
    const std::vector<Kind> &kinds = *t->scanner->kinds;
    std::vector<std::vector<const PlanRow *>> rows(kinds.size());
    for (size_t k = 0; k < kinds.size(); k++)
        if (t->states[k].m && !rows_of(tab, k, kinds[k], t->states[k], rows[k])) return false;
    sc.fit(tab.slots);
    std::vector<int64_t> per_key;
    std::vector<std::pair<int64_t, std::pair<Py_ssize_t, std::string_view>>> latest;
    t->exemplars.clear();
    for (size_t k = 0; k < kinds.size(); k++) {
        const State &s = t->states[k];
        if (s.m == 0) continue;
        const Kind &kind = kinds[k];
        const std::vector<const PlanRow *> &r = rows[k];
        per_key.assign(r.size(), 0);
        for (Py_ssize_t kid : s.kid) per_key[kid]++;
        for (size_t j = 0; j < r.size(); j++)  // the plans' counters, in key order
            if (per_key[j])
                for (int64_t slot : r[j]->incs) sc.add(slot, static_cast<double>(per_key[j]));
        size_t nnum = kind.num.size();
        for (size_t c = 0; c < nnum; c++) {  // each number: its bucket, its sum, its SLOs
            if (s.present[c] == 0 || r[0]->num[c].base < 0) continue;
            const std::vector<double> &bounds = tab.bounds[r[0]->num[c].family];
            int64_t sum_at = static_cast<int64_t>(bounds.size()) + 1;
            for (Py_ssize_t i = 0; i < s.m; i++) {
                if (!s.mask[c][i]) continue;
                double x = s.num[c][i];
                const PlanNum &n = r[s.kid[i]]->num[c];
                int64_t bucket = std::lower_bound(bounds.begin(), bounds.end(), x) - bounds.begin();
                sc.one(n.base + bucket);
                sc.add(n.base + sum_at, x);
                for (const auto &slo : n.slos)
                    if (slo[0] >= 0) sc.one(bucket <= slo[0] ? slo[1] : slo[2]);
            }
        }
        if (kind.tokens) {
            for (size_t p = 0; p < 2; p++) {
                size_t c = nnum + p;
                if (s.present[c] == 0) continue;
                for (Py_ssize_t i = 0; i < s.m; i++)
                    if (s.mask[c][i]) sc.add(r[s.kid[i]]->tokens[p], s.num[c][i]);
            }
        }
        latest.clear();  // each exemplar slot: the latest event with a usable trace of a plan naming it
        for (size_t j = 0; j < r.size(); j++) {
            if (s.last[j] < 0) continue;
            for (int64_t slot : r[j]->exemplars) {
                auto at = std::find_if(latest.begin(), latest.end(), [slot](auto &e) { return e.first == slot; });
                if (at == latest.end()) latest.push_back({slot, {s.last[j], s.trace[j]}});
                else if (at->second.first < s.last[j]) at->second = {s.last[j], s.trace[j]};
            }
        }
        for (auto &[slot, seen] : latest)
            if (exemplar_id(seen.second)) t->exemplars.emplace_back(slot, seen.second);
    }
    t->slots.assign(sc.touched.begin(), sc.touched.end());
    t->amounts.resize(t->slots.size());
    for (size_t i = 0; i < t->slots.size(); i++) {  // as Deltas.finish(): the ones, then the weighted amounts
        int64_t slot = t->slots[i];
        t->amounts[i] = static_cast<double>(sc.ones[slot]) + sc.weighted[slot];
        sc.ones[slot] = 0;
        sc.weighted[slot] = 0.0;
        sc.seen[slot] = 0;
    }
    sc.touched.clear();
    t->generation = tab.generation;
    t->counted = true;
    return true;
}

// The counted deltas as Python (GIL held): (generation, slots as intp bytes, amounts as float64
// bytes, [(slot, trace id)]), or None when the tally was not counted.
PyObject *counted_of(ScanTally *t) {
    if (!t->counted) Py_RETURN_NONE;
    PyObject *exemplars = PyList_New(static_cast<Py_ssize_t>(t->exemplars.size()));
    if (exemplars == nullptr) return nullptr;
    for (size_t i = 0; i < t->exemplars.size(); i++) {
        PyObject *pair = Py_BuildValue("(LN)", static_cast<long long>(t->exemplars[i].first),
                                       text(t->exemplars[i].second));
        if (pair == nullptr) {
            Py_DECREF(exemplars);
            return nullptr;
        }
        PyList_SET_ITEM(exemplars, static_cast<Py_ssize_t>(i), pair);
    }
    static_assert(sizeof(int64_t) == sizeof(Py_ssize_t), "slots are read as numpy intp");
    return Py_BuildValue("(KNNN)", static_cast<unsigned long long>(t->generation),
                         bytes_of(t->slots.data(), static_cast<Py_ssize_t>(t->slots.size() * sizeof(int64_t))),
                         bytes_of(t->amounts.data(), static_cast<Py_ssize_t>(t->amounts.size() * sizeof(double))),
                         exemplars);
}

}  // namespace

struct Plans {
    PyObject_HEAD
    PyObject *scanner;  // the Scanner whose kinds and key encoding the table follows
    Table *table;
};

static PyTypeObject PlansType = {PyVarObject_HEAD_INIT(nullptr, 0)};

static void Plans_dealloc(Plans *self) {
    delete self->table;
    Py_XDECREF(self->scanner);
    Py_TYPE(self)->tp_free(reinterpret_cast<PyObject *>(self));
}

static int64_t slot_arg(PyObject *o, int64_t *most) {
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < 0) {
        PyErr_SetString(PyExc_ValueError, "a slot is a non-negative integer");
        return -1;
    }
    *most = std::max(*most, static_cast<int64_t>(v) + 1);
    return v;
}

static bool slot_list(PyObject *seq, std::vector<int64_t> &out, int64_t *most) {
    PyObject *fast = PySequence_Fast(seq, "slots must be a sequence");
    if (fast == nullptr) return false;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
        int64_t v = slot_arg(PySequence_Fast_GET_ITEM(fast, i), most);
        if (v < 0) {
            Py_DECREF(fast);
            return false;
        }
        out.push_back(v);
    }
    Py_DECREF(fast);
    return true;
}

// Plans(scanner, uppers): `uppers` maps each type the table may count to the largest value of each
// of its number columns (None: no bound), tokens last, as `exporter.events.UPPER`.
static int Plans_init(Plans *self, PyObject *args, PyObject *kwds) {
    static const char *kwlist[] = {"scanner", "uppers", nullptr};
    PyObject *scanner, *uppers;
    if (self->table != nullptr) {
        PyErr_SetString(PyExc_RuntimeError, "a Plans table is initialised once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!", const_cast<char **>(kwlist), &ScannerType, &scanner,
                                     &PyDict_Type, &uppers))
        return -1;
    Scanner *sc = reinterpret_cast<Scanner *>(scanner);
    if (sc->kinds == nullptr) {
        PyErr_SetString(PyExc_ValueError, "the scanner is not initialised");
        return -1;
    }
    auto tab = std::make_unique<Table>();
    size_t nk = sc->kinds->size();
    tab->index.resize(nk);
    tab->countable.assign(nk, 0);
    std::array<double, MAX_NUM> none;
    none.fill(std::numeric_limits<double>::infinity());
    tab->upper.assign(nk, none);
    for (size_t k = 0; k < nk; k++) {
        const Kind &kind = (*sc->kinds)[k];
        PyObject *entry = PyDict_GetItemString(uppers, kind.name.c_str());
        if (entry == nullptr) continue;
        PyObject *fast = PySequence_Fast(entry, "uppers must be sequences");
        if (fast == nullptr) return -1;
        size_t ncol = kind.num.size() + (kind.tokens ? 2 : 0);
        if (static_cast<size_t>(PySequence_Fast_GET_SIZE(fast)) != ncol) {
            Py_DECREF(fast);
            PyErr_Format(PyExc_ValueError, "%s has %zu number columns", kind.name.c_str(), ncol);
            return -1;
        }
        for (size_t c = 0; c < ncol; c++) {
            PyObject *v = PySequence_Fast_GET_ITEM(fast, c);
            if (v == Py_None) continue;
            double x = PyFloat_AsDouble(v);
            if (x == -1.0 && PyErr_Occurred()) {
                Py_DECREF(fast);
                return -1;
            }
            tab->upper[k][c] = x;
        }
        Py_DECREF(fast);
        tab->countable[k] = 1;
    }
    self->scanner = Py_NewRef(scanner);
    self->table = tab.release();
    return 0;
}

// learn(kind, key, incs, numbers, tokens, exemplars): teach the plan of one key as the scanner's
// reports give it (a tuple of str, bool and None). `numbers` has one entry per number column of the
// type (tokens apart): None or (histogram base slot, bucket bounds, [(threshold, good, bad)]);
// `tokens` is None or (input slot, output slot).
static PyObject *Plans_learn(Plans *self, PyObject *args) {
    const char *kind_name;
    PyObject *key, *incs, *numbers, *tokens, *exemplars;
    if (!PyArg_ParseTuple(args, "sO!OOOO", &kind_name, &PyTuple_Type, &key, &incs, &numbers, &tokens, &exemplars))
        return nullptr;
    Scanner *sc = reinterpret_cast<Scanner *>(self->scanner);
    size_t k = 0;
    while (k < sc->kinds->size() && (*sc->kinds)[k].name != kind_name) k++;
    if (k == sc->kinds->size()) return PyErr_Format(PyExc_ValueError, "no type %s", kind_name);
    const Kind &kind = (*sc->kinds)[k];
    if (static_cast<size_t>(PyTuple_GET_SIZE(key)) != kind.key.size())
        return PyErr_Format(PyExc_ValueError, "a %s key has %zu fields", kind_name, kind.key.size());
    std::string encoded;  // as `tally` encodes it
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(key); j++) {
        PyObject *v = PyTuple_GET_ITEM(key, j);
        if (v == Py_None) {
            encoded.push_back(KEY_NONE);
        } else if (PyBool_Check(v)) {
            encoded.push_back(v == Py_True ? KEY_TRUE : KEY_FALSE);
        } else if (PyUnicode_Check(v)) {
            Py_ssize_t size;
            const char *data = PyUnicode_AsUTF8AndSize(v, &size);
            if (data == nullptr) return nullptr;
            key_text(encoded, std::string_view(data, static_cast<size_t>(size)));
        } else {
            return PyErr_Format(PyExc_TypeError, "a key holds str, bool or None, not %s", Py_TYPE(v)->tp_name);
        }
    }
    PlanRow row;
    int64_t most = 0;
    std::vector<std::vector<double>> bounds(kind.num.size());
    if (!slot_list(incs, row.incs, &most) || !slot_list(exemplars, row.exemplars, &most)) return nullptr;
    PyObject *nums = PySequence_Fast(numbers, "numbers must be a sequence");
    if (nums == nullptr) return nullptr;
    bool ok = static_cast<size_t>(PySequence_Fast_GET_SIZE(nums)) == kind.num.size();
    if (!ok) PyErr_Format(PyExc_ValueError, "a %s plan has %zu number columns", kind_name, kind.num.size());
    for (size_t c = 0; ok && c < kind.num.size(); c++) {
        PyObject *entry = PySequence_Fast_GET_ITEM(nums, c), *base, *bseq, *slos;
        if (entry == Py_None) continue;
        ok = PyArg_ParseTuple(entry, "OOO", &base, &bseq, &slos);
        PlanNum &n = row.num[c];
        ok = ok && (n.base = slot_arg(base, &most)) >= 0;
        PyObject *bfast = ok ? PySequence_Fast(bseq, "bounds must be a sequence") : nullptr;
        ok = bfast != nullptr;
        for (Py_ssize_t b = 0; ok && b < PySequence_Fast_GET_SIZE(bfast); b++) {
            double x = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(bfast, b));
            ok = !(x == -1.0 && PyErr_Occurred());
            bounds[c].push_back(x);
        }
        Py_XDECREF(bfast);
        most = std::max(most, n.base + static_cast<int64_t>(bounds[c].size()) + 2);  // buckets, +Inf, sum
        PyObject *sfast = ok ? PySequence_Fast(slos, "slos must be a sequence") : nullptr;
        ok = sfast != nullptr;
        for (Py_ssize_t j = 0; ok && j < PySequence_Fast_GET_SIZE(sfast); j++) {
            long long threshold;
            PyObject *good, *bad;
            ok = PyArg_ParseTuple(PySequence_Fast_GET_ITEM(sfast, j), "LOO", &threshold, &good, &bad);
            std::array<int64_t, 3> slo{threshold, 0, 0};
            ok = ok && (slo[1] = slot_arg(good, &most)) >= 0 && (slo[2] = slot_arg(bad, &most)) >= 0;
            if (ok) n.slos.push_back(slo);
        }
        Py_XDECREF(sfast);
    }
    Py_DECREF(nums);
    if (ok && tokens != Py_None) {
        PyObject *in, *out;
        ok = PyArg_ParseTuple(tokens, "OO", &in, &out) && (row.tokens[0] = slot_arg(in, &most)) >= 0 &&
             (row.tokens[1] = slot_arg(out, &most)) >= 0;
    }
    if (!ok) return nullptr;
    Table &tab = *self->table;
    std::unique_lock lock(tab.mu);
    for (size_t c = 0; c < kind.num.size(); c++) {
        if (row.num[c].base < 0) continue;
        auto same = std::find(tab.bounds.begin(), tab.bounds.end(), bounds[c]);
        row.num[c].family = static_cast<int>(same - tab.bounds.begin());
        if (same == tab.bounds.end()) tab.bounds.push_back(std::move(bounds[c]));
    }
    auto [at, fresh] = tab.index[k].try_emplace(encoded, static_cast<int32_t>(tab.rows.size()));
    if (fresh) tab.rows.push_back(std::move(row));
    else tab.rows[at->second] = std::move(row);
    tab.slots = std::max(tab.slots, most);
    Py_RETURN_NONE;
}

// forget(): drop every plan; counts made before no longer match `generation()`.
static PyObject *Plans_forget(Plans *self, PyObject *) {
    Table &tab = *self->table;
    std::unique_lock lock(tab.mu);
    for (auto &index : tab.index) index.clear();
    tab.rows.clear();
    tab.bounds.clear();
    tab.slots = 0;
    tab.generation++;
    Py_RETURN_NONE;
}

static PyObject *Plans_generation(Plans *self, PyObject *) {
    std::shared_lock lock(self->table->mu);
    return PyLong_FromUnsignedLongLong(self->table->generation);
}

static Py_ssize_t Plans_len(Plans *self) {
    std::shared_lock lock(self->table->mu);
    return static_cast<Py_ssize_t>(self->table->rows.size());
}

static PyMethodDef Plans_methods[] = {
    {"learn", reinterpret_cast<PyCFunction>(Plans_learn), METH_VARARGS,
     "learn(kind, key, incs, numbers, tokens, exemplars): the plan of one key"},
    {"forget", reinterpret_cast<PyCFunction>(Plans_forget), METH_NOARGS, "forget(): drop every plan"},
    {"generation", reinterpret_cast<PyCFunction>(Plans_generation), METH_NOARGS,
     "generation() -> how many times the table was forgotten"},
    {nullptr, nullptr, 0, nullptr},
};

static PySequenceMethods Plans_sequence = {reinterpret_cast<lenfunc>(Plans_len)};

// --- the C API (`_scan_api.h`): the same tally, fed by another extension's setters ---

static Scanner *as_scanner(PyObject *o) {
    if (!PyObject_TypeCheck(o, &ScannerType) || reinterpret_cast<Scanner *>(o)->kinds == nullptr) {
        PyErr_SetString(PyExc_TypeError, "expected an initialised exporter._scan.Scanner");
        return nullptr;
    }
    return reinterpret_cast<Scanner *>(o);
}

static int api_field(PyObject *o, const char *name) {
    Scanner *self = as_scanner(o);
    if (self == nullptr) return -1;
    for (size_t f = 0; f < self->names->size(); f++)
        if ((*self->names)[f] == name) return static_cast<int>(f);
    return -1;
}

static int api_kind(PyObject *o, const char *name) {
    Scanner *self = as_scanner(o);
    if (self == nullptr) return -1;
    for (size_t k = 0; k < self->kinds->size(); k++)
        if ((*self->kinds)[k].name == name) return static_cast<int>(k);
    return -1;
}

static ScanTally *api_begin(PyObject *o) {
    Scanner *self = as_scanner(o);
    if (self == nullptr) return nullptr;
    Py_INCREF(o);
    return new ScanTally(self);
}

static void api_start(ScanTally *t) { t->start(); }

static bool api_text(ScanTally *t, int f, const char *data, size_t size) {
    // the JSON path's parser refuses a document that is not UTF-8; here each text is checked
    return simdjson::validate_utf8(data, size) && t->seen.set_text(f, std::string_view(data, size));
}

static bool api_utf8_text(ScanTally *t, int f, const char *data, size_t size) {
    return t->seen.set_text(f, std::string_view(data, size));
}

static bool api_number(ScanTally *t, int f, double x, bool integral) { return t->seen.set_number(f, x, integral); }
static bool api_flag(ScanTally *t, int f, bool value) { return t->seen.set_flag(f, value); }
static bool api_null(ScanTally *t, int f) { return t->seen.set_null(f); }
static bool api_tokens(ScanTally *t, int f, ScanCount in, ScanCount out) { return t->seen.set_tokens(f, in, out); }
static bool api_end(ScanTally *t) { return t->end(); }
static PyObject *api_finish(ScanTally *t) { return t->finish(); }

static void api_free(ScanTally *t) {
    if (t == nullptr) return;
    Py_DECREF(reinterpret_cast<PyObject *>(t->scanner));
    delete t;
}

static bool api_is_plans(PyObject *scanner, PyObject *plans) {
    return PyObject_TypeCheck(plans, &PlansType) && reinterpret_cast<Plans *>(plans)->table != nullptr &&
           reinterpret_cast<Plans *>(plans)->scanner == scanner;
}

static bool api_count(ScanTally *t, PyObject *plans) {
    return count_tally(t, *reinterpret_cast<Plans *>(plans)->table);
}

static PyObject *api_counted(ScanTally *t) { return counted_of(t); }

static const ScanApi API = {SCAN_API_VERSION, api_field,   api_kind,    api_begin,  api_start,
                            api_text,         api_utf8_text, api_number, api_flag,  api_null,
                            api_tokens,       api_end,     api_finish,  api_free,   api_is_plans,
                            api_count,        api_counted};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "exporter._scan",
                                    "One-pass scan of raw event batches (see _scan.cpp).", -1, nullptr};

PyMODINIT_FUNC PyInit__scan(void) {
    PlansType.tp_as_sequence = &Plans_sequence;
    PyObject *m = PyModule_Create(&module);
    if (m == nullptr) return nullptr;
    PyObject *capsule = PyCapsule_New(const_cast<ScanApi *>(&API), SCAN_API_CAPSULE, nullptr);
    if (add_type(m, &ScannerType, "exporter._scan.Scanner", sizeof(Scanner), reinterpret_cast<initproc>(Scanner_init),
                 reinterpret_cast<destructor>(Scanner_dealloc), Scanner_methods,
                 "Scanner(kinds, limits): one-pass parse and tally of raw event batches") < 0 ||
        add_type(m, &PlansType, "exporter._scan.Plans", sizeof(Plans), reinterpret_cast<initproc>(Plans_init),
                 reinterpret_cast<destructor>(Plans_dealloc), Plans_methods,
                 "Plans(scanner, uppers): the classifier's plans, for counting a tally without Python") < 0 ||
        capsule == nullptr || PyModule_AddObject(m, "_C_API", capsule) < 0) {
        Py_XDECREF(capsule);
        Py_DECREF(m);
        return nullptr;
    }
    return m;
}
