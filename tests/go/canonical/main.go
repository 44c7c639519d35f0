// Command canonical is the Go side of the differential test of idprov's
// canonical JSON encoder. It marshals idprov messages with Go's own
// encoding/json (the encoder Go idprov devices use) and signs them the way
// the idprov standard does, so the Rust encoder can be compared with Go
// itself, byte for byte.
//
// Protocol, one line per case on standard input, one line of output each:
//
//	req  HEX(deviceID) HEX(ip) HEX(mac) HEX(publicKeyPEM) HEX(secret)
//	resp RETRYSEC HEX(status) HEX(caCert) HEX(clientCert) HEX(secret)
//
// The answer is "HEX(json) BASE64SIG", where json is the marshalled message
// with "signature":"" and BASE64SIG the HMAC-SHA256 of it keyed with the
// raw secret. Strings are hex-encoded, after an "x" so that an empty
// string is still a field, so that any bytes, invalid UTF-8 included, reach
// Go unchanged.
//
// It uses the standard library only and is written for this repository.
package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// provisionRequest has the field names and order of an idprov request.
type provisionRequest struct {
	DeviceID     string `json:"deviceID"`
	IP           string `json:"ip"`
	MAC          string `json:"mac"`
	PublicKeyPEM string `json:"publicKeyPEM"`
	Signature    string `json:"signature"`
}

// provisionResponse has the field names and order of an idprov response.
type provisionResponse struct {
	RetrySec   int    `json:"retrySec,omitempty"`
	Status     string `json:"status"`
	CaCert     string `json:"caCert"`
	ClientCert string `json:"clientCert"`
	Signature  string `json:"signature"`
}

func unhex(s string) string {
	if !strings.HasPrefix(s, "x") {
		fmt.Fprintln(os.Stderr, "field without its x prefix:", s)
		os.Exit(2)
	}
	b, err := hex.DecodeString(s[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad hex:", err)
		os.Exit(2)
	}
	return string(b)
}

func sign(secret string, msg []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(msg)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	for in.Scan() {
		f := strings.Fields(in.Text())
		var msg []byte
		var err error
		var secret string
		switch {
		case len(f) == 6 && f[0] == "req":
			msg, err = json.Marshal(provisionRequest{
				DeviceID: unhex(f[1]), IP: unhex(f[2]), MAC: unhex(f[3]), PublicKeyPEM: unhex(f[4]),
			})
			secret = unhex(f[5])
		case len(f) == 6 && f[0] == "resp":
			retry, perr := strconv.Atoi(f[1])
			if perr != nil {
				fmt.Fprintln(os.Stderr, "bad retrySec:", perr)
				os.Exit(2)
			}
			msg, err = json.Marshal(provisionResponse{
				RetrySec: retry, Status: unhex(f[2]), CaCert: unhex(f[3]), ClientCert: unhex(f[4]),
			})
			secret = unhex(f[5])
		default:
			fmt.Fprintln(os.Stderr, "bad line:", in.Text())
			os.Exit(2)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "marshal:", err)
			os.Exit(2)
		}
		fmt.Fprintf(out, "%s %s\n", hex.EncodeToString(msg), sign(secret, msg))
		out.Flush()
	}
}
