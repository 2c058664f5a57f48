package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every environment override: the YAML path in upper case
// with '.' as '_', e.g. openfga.auth.api_token is GROUPSYNC_OPENFGA_AUTH_API_TOKEN.
const EnvPrefix = "GROUPSYNC_"

// EnvVars lists every environment variable that overrides a setting, with
// the field it sets, in file order.
func EnvVars() [][2]string {
	var out [][2]string
	walkFields(reflect.ValueOf(&Config{}).Elem(), "", func(field string, _ reflect.Value) {
		out = append(out, [2]string{envName(field), field})
	})
	return out
}

func envName(field string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(field, ".", "_"))
}

// walkFields calls fn for every scalar field (string, bool, int, durations)
// under v, with its YAML path.
func walkFields(v reflect.Value, prefix string, fn func(field string, v reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		name := tag
		if prefix != "" {
			name = prefix + "." + tag
		}
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Struct:
			walkFields(f, name, fn)
		case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Float64:
			fn(name, f)
		}
	}
}

func applyEnv(c *Config, lookup func(string) (string, bool)) error {
	var err error
	walkFields(reflect.ValueOf(c).Elem(), "", func(field string, f reflect.Value) {
		name := envName(field)
		raw, ok := lookup(name)
		if !ok || err != nil {
			return
		}
		switch {
		case f.Type() == reflect.TypeFor[Duration]():
			d, perr := time.ParseDuration(raw)
			if perr != nil {
				err = fieldError(field, "%s is not a duration (write e.g. 30s or 2m) (its value is not repeated here: a misplaced secret must not reach a log)", name)
				return
			}
			f.SetInt(int64(d))
		case f.Kind() == reflect.String:
			f.SetString(raw)
		case f.Kind() == reflect.Bool:
			b, perr := strconv.ParseBool(raw)
			if perr != nil {
				err = fieldError(field, "%s is not true or false (its value is not repeated here: a misplaced secret must not reach a log)", name)
				return
			}
			f.SetBool(b)
		case f.Kind() == reflect.Float64:
			x, perr := strconv.ParseFloat(raw, 64)
			if perr != nil {
				err = fieldError(field, "%s is not a number (its value is not repeated here: a misplaced secret must not reach a log)", name)
				return
			}
			f.SetFloat(x)
		case f.Kind() == reflect.Int:
			n, perr := strconv.Atoi(raw)
			if perr != nil {
				err = fieldError(field, "%s is not a whole number (its value is not repeated here: a misplaced secret must not reach a log)", name)
				return
			}
			f.SetInt(int64(n))
		default:
			err = fmt.Errorf("internal: %s has an unsupported kind %s", field, f.Kind())
		}
	})
	return err
}
