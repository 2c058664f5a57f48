package config

import "fmt"

var sprintf = fmt.Sprintf
