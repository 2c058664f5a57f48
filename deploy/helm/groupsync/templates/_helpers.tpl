{{/* The chart's name, or nameOverride. */}}
{{- define "groupsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's objects' name. */}}
{{- define "groupsync.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "groupsync.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "groupsync.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "groupsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "groupsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "groupsync.labels" -}}
{{ include "groupsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "groupsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "groupsync.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "groupsync.secretName" -}}
{{- default (include "groupsync.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/*
The pod of the CronJob's Job (mode cronjob) or of the Deployment (mode
daemon): the same container, hardened the same way; only the command, the
port and the probes differ.
*/}}
{{- define "groupsync.pod" -}}
metadata:
  labels:
    {{- include "groupsync.selectorLabels" . | nindent 4 }}
    app.kubernetes.io/component: {{ .Values.mode }}
    {{- if .Values.workloadIdentity.enabled }}
    azure.workload.identity/use: "true"
    {{- end }}
  annotations:
    checksum/config: {{ toYaml .Values.config | sha256sum }}
    {{- if eq .Values.mode "daemon" }}
    prometheus.io/port: {{ .Values.daemon.port | quote }}
    {{- with .Values.daemon.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- end }}
spec:
  serviceAccountName: {{ include "groupsync.serviceAccountName" . }}
  {{- if eq .Values.mode "cronjob" }}
  restartPolicy: Never
  {{- else }}
  terminationGracePeriodSeconds: {{ .Values.daemon.terminationGracePeriodSeconds }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: groupsync
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default (printf "v%s" .Chart.AppVersion) }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - {{ if eq .Values.mode "daemon" }}daemon{{ else }}apply{{ end }}
        - --config=/etc/groupsync/groupsync.yaml
        - --log-format=json
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        - name: GROUPSYNC_CONFIG
          value: /etc/groupsync/groupsync.yaml
        {{- if eq .Values.mode "daemon" }}
        # The port below; the environment wins over the config file.
        - name: GROUPSYNC_DAEMON_LISTEN
          value: {{ printf ":%v" .Values.daemon.port | quote }}
        {{- end }}
        {{- if .Values.pushgateway.url }}
        - name: GROUPSYNC_DAEMON_PUSHGATEWAY_URL
          value: {{ .Values.pushgateway.url | quote }}
        - name: GROUPSYNC_DAEMON_PUSHGATEWAY_JOB
          value: {{ .Values.pushgateway.job | quote }}
        {{- end }}
      envFrom:
        - secretRef:
            name: {{ include "groupsync.secretName" . }}
            optional: true
      {{- if eq .Values.mode "daemon" }}
      ports:
        - name: http
          containerPort: {{ .Values.daemon.port }}
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 10
        timeoutSeconds: 2
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: 15
        timeoutSeconds: 2
        failureThreshold: 1
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        runAsNonRoot: true
        capabilities:
          drop: [ALL]
      volumeMounts:
        - name: config
          mountPath: /etc/groupsync
          readOnly: true
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: config
      configMap:
        name: {{ include "groupsync.fullname" . }}
    - name: tmp
      emptyDir:
        sizeLimit: 16Mi
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
