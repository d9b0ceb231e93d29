package httpapi

import (
	"encoding/json"
	"reflect"
	"time"
)

// wirePrecision is the precision of every timestamp the API answers. The
// rule (README, API conventions): RFC 3339 in UTC with a "Z", to the
// millisecond, trailing zeros of the fraction left out as Go's
// time.RFC3339Nano writes them ("2026-05-01T12:02:00Z",
// "2026-05-01T12:02:00.25Z"). Without it the precision depended on where a
// time came from: microseconds from the database, nanoseconds from the
// clock, milliseconds from Redis.
const wirePrecision = time.Millisecond

// marshalJSON is json.Marshal with every time.Time in v (at any depth, by
// value or pointer, in slices, maps and interfaces) in UTC and truncated
// to wirePrecision. v is not changed: what holds a time is copied.
func marshalJSON(v any) ([]byte, error) {
	if v != nil {
		memo := map[reflect.Type]bool{}
		rv := reflect.ValueOf(v)
		if holdsTime(rv.Type(), memo) {
			v = wireTimes(rv, memo).Interface()
		}
	}
	return json.Marshal(v)
}

var timeType = reflect.TypeFor[time.Time]()

// holdsTime reports whether a value of type t can hold a time.Time that
// the encoder would write; memo caches answers and breaks cycles
// (a reply list inside a comment).
func holdsTime(t reflect.Type, memo map[reflect.Type]bool) bool {
	if t == timeType {
		return true
	}
	if got, ok := memo[t]; ok {
		return got
	}
	memo[t] = false // in progress: a cycle adds nothing
	var out bool
	switch t.Kind() {
	case reflect.Interface:
		out = true // known only from the value
	case reflect.Pointer, reflect.Slice, reflect.Array:
		out = holdsTime(t.Elem(), memo)
	case reflect.Map:
		out = holdsTime(t.Elem(), memo)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && holdsTime(f.Type, memo) {
				out = true
				break
			}
		}
	}
	memo[t] = out
	return out
}

// wireTimes returns a copy of v with its times put to the wire rule.
// Unexported fields are copied as they are (the encoder skips them).
func wireTimes(v reflect.Value, memo map[reflect.Type]bool) reflect.Value {
	t := v.Type()
	if t == timeType {
		return reflect.ValueOf(v.Interface().(time.Time).UTC().Truncate(wirePrecision))
	}
	if !holdsTime(t, memo) {
		return v
	}
	switch t.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		out := reflect.New(t).Elem()
		out.Set(wireTimes(v.Elem(), memo))
		return out
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		out := reflect.New(t.Elem())
		out.Elem().Set(wireTimes(v.Elem(), memo))
		return out
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeSlice(t, v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(wireTimes(v.Index(i), memo))
		}
		return out
	case reflect.Array:
		out := reflect.New(t).Elem()
		for i := range v.Len() {
			out.Index(i).Set(wireTimes(v.Index(i), memo))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(t, v.Len())
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), wireTimes(it.Value(), memo))
		}
		return out
	case reflect.Struct:
		out := reflect.New(t).Elem()
		out.Set(v)
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && holdsTime(f.Type, memo) {
				out.Field(i).Set(wireTimes(v.Field(i), memo))
			}
		}
		return out
	}
	return v
}
