package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/controllers"
	"github.com/skiff-dev/skiff/controllers/localpath"
)

// upLocalPath is skiff up's built-in local provisioner for its own node: it makes the default
// StorageClass local-path (unless a class of that name exists), then gives that class's claims
// directories under DATA_DIR/storage.
func upLocalPath(up *upOptions, restConfig *rest.Config) func(context.Context) error {
	return func(ctx context.Context) error {
		host, err := os.Hostname()
		if err != nil {
			return err
		}
		client, err := kubernetes.NewForConfig(rest.CopyConfig(restConfig))
		if err != nil {
			return err
		}
		// the API server may still be starting
		err = wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
			if err := localpath.EnsureDefaultStorageClass(ctx, client); err != nil {
				slog.Debug("default StorageClass not created yet", "err", err)
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			return nil // ctx is done
		}
		broadcaster := record.NewBroadcaster(record.WithContext(ctx))
		broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
		defer broadcaster.Shutdown()
		reporting := controllers.Reporting{Recorder: func(component string) record.EventRecorder {
			return broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
		}}
		factory := informers.NewSharedInformerFactory(client, 0)
		c, err := localpath.New(factory.Core().V1().PersistentVolumes(), factory.Core().V1().PersistentVolumeClaims(),
			factory.Storage().V1().StorageClasses(), client, reporting, localpath.Options{
				// the kubelet's node name (kubeletOptions.setUp)
				NodeName: strings.ToLower(strings.TrimSpace(host)),
				Dir:      filepath.Join(up.dataDir, "storage"),
			})
		if err != nil {
			return err
		}
		factory.Start(ctx.Done())
		defer factory.Shutdown()
		c.Run(ctx, 1)
		return nil
	}
}
