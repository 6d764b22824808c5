package kubelet

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/websocket"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/httpstream/wsstream"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/client-go/util/exec"
)

// WebSocket streams, served by the kubelet itself. A runtime's streaming server may speak only
// SPDY (containerd 1.6 knows no v5.channel.k8s.io, and no runtime knows the port-forward
// tunnel), so a WebSocket client's exec, attach or port-forward ends here and the kubelet is
// the SPDY client of the runtime's one-time stream URL:
//
//   - exec and attach: channels 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize under
//     v5.channel.k8s.io (with the CLOSE signal that ends stdin), v4.channel.k8s.io,
//     channel.k8s.io and their base64 forms; the error channel carries a metav1.Status from
//     v4 on, plain text before;
//   - port-forward tunnelled: the subprotocol SPDY/3.1+portforward.k8s.io carries the client's
//     SPDY frames in binary messages; they pass to the runtime unchanged once the kubelet has
//     upgraded a connection to it (kubectl 1.31 and later);
//   - port-forward in channels (the older clients): two channels per requested port, data
//     and error, each opened with the port in two little-endian bytes.
//
// It must never let a WebSocket request reach the runtime: a client that asked for WebSocket
// gets WebSocket, or an error, and never a fallback.

// tunneledPortForwardProtocol is kubectl's port-forward over WebSocket (KEP 4006).
const tunneledPortForwardProtocol = "SPDY/3.1+portforward.k8s.io"

// remoteCommandProtocols are the exec and attach subprotocols, binary or base64.
var remoteCommandProtocols = map[string]bool{
	"":                                      true,
	wsstream.ChannelWebSocketProtocol:       true,
	wsstream.Base64ChannelWebSocketProtocol: false,
	"v4." + wsstream.ChannelWebSocketProtocol:       true,
	"v4." + wsstream.Base64ChannelWebSocketProtocol: false,
	remotecommandconsts.StreamProtocolV5Name:        true,
}

// statusOnErrorChannel reports whether a subprotocol's error channel carries a metav1.Status
// (v4 and later) rather than an error's text.
func statusOnErrorChannel(protocol string) bool {
	return protocol == remotecommandconsts.StreamProtocolV5Name || protocol == "v4."+wsstream.ChannelWebSocketProtocol ||
		protocol == "v4."+wsstream.Base64ChannelWebSocketProtocol
}

// runtimeStreamConfig reaches a runtime's streaming server: on loopback, never through a proxy,
// and over TLS without verification when the runtime serves it so (its certificate is
// self-signed and the URL is a one-time secret the kubelet just received over CRI).
func runtimeStreamConfig(target *url.URL) *rest.Config {
	cfg := &rest.Config{Proxy: func(*http.Request) (*url.URL, error) { return nil, nil }}
	cfg.Insecure = target.Scheme == "https"
	return cfg
}

// serveRemoteCommandWebSocket answers an exec or attach WebSocket and runs it on the runtime's
// stream URL over SPDY. command names an exec's command for its exit status; nil for attach.
func serveRemoteCommandWebSocket(w http.ResponseWriter, r *http.Request, target *url.URL, stdio streamStdio, command []string) {
	channels := []wsstream.ChannelType{
		channelIf(stdio.stdin, wsstream.ReadChannel), channelIf(stdio.stdout, wsstream.WriteChannel),
		channelIf(stdio.stderr, wsstream.WriteChannel), wsstream.WriteChannel, wsstream.ReadChannel,
		// a channel no client writes to or closes: its end is the connection's, which is
		// how the kubelet learns that the client went away (v5 clients may close any of
		// the others, the resize channel when they have no more sizes)
		wsstream.ReadChannel,
	}
	const connectionChannel = 5
	protocols := map[string]wsstream.ChannelProtocolConfig{}
	for name, binary := range remoteCommandProtocols {
		protocols[name] = wsstream.ChannelProtocolConfig{Binary: binary, Channels: channels}
	}
	conn := wsstream.NewConn(protocols)
	protocol, streams, err := conn.Open(w, r)
	if err != nil {
		slog.Debug("WebSocket stream not opened", "path", r.URL.Path, "err", err)
		return
	}
	defer conn.Close()
	slog.Info("stream over WebSocket", "path", r.URL.Path, "protocol", protocol)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	clientGone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, streams[connectionChannel])
		close(clientGone)
		cancel()
	}()
	sizes := make(chan remotecommand.TerminalSize)
	go func() {
		defer close(sizes)
		dec := json.NewDecoder(streams[remotecommandconsts.StreamResize])
		for {
			var size remotecommand.TerminalSize
			if err := dec.Decode(&size); err != nil {
				return
			}
			if stdio.tty {
				select {
				case sizes <- size:
				case <-ctx.Done():
					return
				}
			}
		}
	}()

	opts := remotecommand.StreamOptions{Tty: stdio.tty}
	if stdio.stdin {
		opts.Stdin = streams[remotecommandconsts.StreamStdIn]
	}
	if stdio.stdout {
		opts.Stdout = streams[remotecommandconsts.StreamStdOut]
	}
	if stdio.stderr {
		opts.Stderr = streams[remotecommandconsts.StreamStdErr]
	}
	if stdio.tty {
		opts.TerminalSizeQueue = terminalSizes(sizes)
	}
	executor, err := remotecommand.NewSPDYExecutor(runtimeStreamConfig(target), http.MethodPost, target)
	if err == nil {
		err = executor.StreamWithContext(ctx, opts)
	}
	writeRemoteCommandStatus(streams[remotecommandconsts.StreamErr], protocol, err, command)
	// a client closes the connection once it has the status; closing it first would cut
	// the status short on a slow link (and log a receive error)
	select {
	case <-clientGone:
	case <-time.After(time.Second):
	}
}

func channelIf(open bool, t wsstream.ChannelType) wsstream.ChannelType {
	if open {
		return t
	}
	return wsstream.IgnoreChannel
}

// terminalSizes is a TerminalSizeQueue over the sizes read from the resize channel.
type terminalSizes <-chan remotecommand.TerminalSize

func (q terminalSizes) Next() *remotecommand.TerminalSize {
	size, ok := <-q
	if !ok {
		return nil
	}
	return &size
}

// writeRemoteCommandStatus ends an exec or attach on its error channel, as upstream's kubelet
// does: from v4 on a metav1.Status (Success, or NonZeroExitCode with the ExitCode cause, or
// the failure's message), before v4 only a failure's text.
func writeRemoteCommandStatus(errorChannel io.Writer, protocol string, err error, command []string) {
	var exitErr exec.ExitError
	if !statusOnErrorChannel(protocol) {
		if err != nil {
			_, _ = io.WriteString(errorChannel, err.Error())
		}
		return
	}
	status := metav1.Status{Status: metav1.StatusSuccess}
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && exitErr.Exited():
		status = metav1.Status{
			Status: metav1.StatusFailure,
			Reason: remotecommandconsts.NonZeroExitCodeReason,
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{
				Type: remotecommandconsts.ExitCodeCauseType, Message: strconv.Itoa(exitErr.ExitStatus()),
			}}},
			Message: fmt.Sprintf("command terminated with non-zero exit code: error executing command %v, exit code %d", command, exitErr.ExitStatus()),
		}
	default:
		status = metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonInternalError, Message: err.Error()}
	}
	b, _ := json.Marshal(status)
	_, _ = errorChannel.Write(b)
}

// servePortForwardWebSocket answers a port-forward WebSocket: tunnelled SPDY when the client
// asks for it, else one data and one error channel for each of ports.
func servePortForwardWebSocket(w http.ResponseWriter, r *http.Request, target *url.URL, ports []int32) {
	if wsstream.IsWebSocketRequestWithTunnelingProtocol(r) {
		tunnelPortForward(w, r, target)
		return
	}
	if len(ports) == 0 {
		http.Error(w, `query parameter "port" is required`, http.StatusBadRequest)
		return
	}
	portForwardChannels(w, r, target, ports)
}

// tunnelPortForward upgrades a connection to the runtime's SPDY port-forward server and
// passes the bytes of the client's tunnel through it both ways.
func tunnelPortForward(w http.ResponseWriter, r *http.Request, target *url.URL) {
	upstream, upstreamReader, err := dialSPDYUpgrade(r.Context(), target, "portforward.k8s.io")
	if err != nil {
		http.Error(w, fmt.Sprintf("unable to upgrade connection: %v", err), http.StatusInternalServerError)
		return
	}
	defer upstream.Close()
	server := websocket.Server{
		Handshake: func(config *websocket.Config, _ *http.Request) error {
			for _, p := range config.Protocol {
				if p == tunneledPortForwardProtocol {
					config.Protocol = []string{p}
					return nil
				}
			}
			return fmt.Errorf("requested protocol(s) are not supported: %v; supports %v", config.Protocol, []string{tunneledPortForwardProtocol})
		},
		Handler: func(ws *websocket.Conn) {
			slog.Info("stream over WebSocket", "path", r.URL.Path, "protocol", tunneledPortForwardProtocol)
			ws.PayloadType = websocket.BinaryFrame
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(upstream, ws); done <- struct{}{} }()
			go func() { _, _ = io.Copy(ws, upstreamReader); done <- struct{}{} }()
			<-done // either side's end ends both
			upstream.Close()
			ws.Close()
			<-done
		},
	}
	server.ServeHTTP(w, r)
}

// dialSPDYUpgrade sends the upgrade request to the runtime's stream URL and returns the
// connection once the runtime switched it to SPDY, with what it already read past the response.
func dialSPDYUpgrade(ctx context.Context, target *url.URL, protocol string) (net.Conn, *bufio.Reader, error) {
	host := target.Host
	if target.Port() == "" {
		port := "80"
		if target.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(target.Hostname(), port)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, nil, err
	}
	if target.Scheme == "https" {
		conn = tls.Client(conn, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) // as runtimeStreamConfig
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	req.Header.Set(httpstream.HeaderConnection, httpstream.HeaderUpgrade)
	req.Header.Set(httpstream.HeaderUpgrade, "SPDY/3.1")
	req.Header.Set(httpstream.HeaderProtocolVersion, protocol)
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		conn.Close()
		return nil, nil, fmt.Errorf("the runtime answered %s: %s", resp.Status, body)
	}
	return conn, br, nil
}

// portForwardChannels answers the channel form of port-forward: for each port a SPDY data and
// error stream to the runtime, copied to and from its two channels.
func portForwardChannels(w http.ResponseWriter, r *http.Request, target *url.URL, ports []int32) {
	transport, upgrader, err := spdy.RoundTripperFor(runtimeStreamConfig(target))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, target)
	upstream, _, err := dialer.Dial("portforward.k8s.io")
	if err != nil {
		http.Error(w, fmt.Sprintf("unable to upgrade connection: %v", err), http.StatusInternalServerError)
		return
	}
	defer upstream.Close()

	channels := make([]wsstream.ChannelType, 0, 2*len(ports))
	for range ports {
		channels = append(channels, wsstream.ReadWriteChannel, wsstream.WriteChannel)
	}
	protocols := map[string]wsstream.ChannelProtocolConfig{}
	for _, name := range []string{"", "v4." + wsstream.ChannelWebSocketProtocol} {
		protocols[name] = wsstream.ChannelProtocolConfig{Binary: true, Channels: channels}
	}
	protocols["v4."+wsstream.Base64ChannelWebSocketProtocol] = wsstream.ChannelProtocolConfig{Binary: false, Channels: channels}
	conn := wsstream.NewConn(protocols)
	protocol, streams, err := conn.Open(w, r)
	if err != nil {
		slog.Debug("WebSocket stream not opened", "path", r.URL.Path, "err", err)
		return
	}
	defer conn.Close()
	slog.Info("stream over WebSocket", "path", r.URL.Path, "protocol", protocol, "ports", ports)

	var wg sync.WaitGroup
	for i, port := range ports {
		data, errs := streams[2*i], streams[2*i+1]
		prefix := binary.LittleEndian.AppendUint16(nil, uint16(port))
		_, _ = data.Write(prefix)
		_, _ = errs.Write(prefix)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer data.Close()
			defer errs.Close()
			if err := forwardPortStreams(upstream, strconv.Itoa(i), port, data, errs); err != nil {
				fmt.Fprintf(errs, "error forwarding port %d to pod %s: %v", port, r.PathValue("pod"), err)
			}
		}()
	}
	wg.Wait()
}

// forwardPortStreams opens one port's error and data streams on the runtime's SPDY connection
// and copies the data both ways and the runtime's errors to the client, until the pod's side
// closes.
func forwardPortStreams(upstream httpstream.Connection, requestID string, port int32, data io.ReadWriter, errs io.Writer) error {
	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(int(port)))
	headers.Set(corev1.PortForwardRequestIDHeader, requestID)
	errorStream, err := upstream.CreateStream(headers)
	if err != nil {
		return err
	}
	errorStream.Close() // the client only reads it
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	dataStream, err := upstream.CreateStream(headers)
	if err != nil {
		return err
	}
	defer dataStream.Reset()
	errorsDone := make(chan struct{})
	go func() {
		_, _ = io.Copy(errs, errorStream)
		close(errorsDone)
	}()
	go func() {
		_, _ = io.Copy(dataStream, data)
		dataStream.Close()
	}()
	_, err = io.Copy(data, dataStream)
	<-errorsDone
	return err
}
