{{/*
Expand the name of the chart.
*/}}
{{- define "playgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "playgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "playgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "playgate.labels" -}}
helm.sh/chart: {{ include "playgate.chart" . }}
{{ include "playgate.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels
*/}}
{{- define "playgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "playgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "playgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "playgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference.
*/}}
{{- define "playgate.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/*
Stops rendering with a clear message when no database is configured:
PostgreSQL is external and there is no sensible in-cluster default.
*/}}
{{- define "playgate.requireDatabase" -}}
{{- if not (or .Values.database.url .Values.database.existingSecret) }}
{{- fail "playgate: set database.url (postgres://user:password@host:5432/playgate) or database.existingSecret (a Secret holding DATABASE_URL)" }}
{{- end }}
{{- if and .Values.bootstrapAdmin.login (not .Values.bootstrapAdmin.password) (not .Values.bootstrapAdmin.existingSecret) }}
{{- fail "playgate: bootstrapAdmin.login needs bootstrapAdmin.password (or use bootstrapAdmin.existingSecret)" }}
{{- end }}
{{- end }}

{{/*
Secret and key holding DATABASE_URL for the pods.
*/}}
{{- define "playgate.databaseSecretName" -}}
{{- .Values.database.existingSecret | default (include "playgate.fullname" .) }}
{{- end }}
{{- define "playgate.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}DATABASE_URL{{ end }}
{{- end }}

{{/*
True when the chart's own Secret has at least one key.
*/}}
{{- define "playgate.hasSecret" -}}
{{- $db := .Values.database -}}
{{- if or (and (or $db.url $db.listenUrl $db.statsUrl) (not $db.existingSecret)) (and .Values.bootstrapAdmin.login (not .Values.bootstrapAdmin.existingSecret)) (and .Values.ome.secret (not .Values.ome.existingSecret)) (and .Values.viewerCookie.secret (not .Values.viewerCookie.existingSecret)) }}true{{ end }}
{{- end }}

{{/*
Environment variables that come from Secrets (the database URLs, bootstrap
admin, OvenMediaEngine secret, viewer cookie secret). `databaseSecret`
overrides the Secret of the database URLs (the migration Job reads a hook
Secret that exists before the release's own resources). The Job migrates
through the listen URL, so it gets that one too; the statistics URL only the
pods.
*/}}
{{- define "playgate.secretEnv" -}}
{{- $ctx := .ctx -}}
{{- $full := include "playgate.fullname" $ctx -}}
{{- $db := $ctx.Values.database -}}
{{- $dbSecret := .databaseSecret | default (include "playgate.databaseSecretName" $ctx) -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $dbSecret }}
      key: {{ include "playgate.databaseSecretKey" $ctx }}
{{- if or (and $db.existingSecret $db.existingSecretListenKey) (and (not $db.existingSecret) $db.listenUrl) }}
- name: PLAYGATE_LISTEN_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $dbSecret }}
      key: {{ if $db.existingSecret }}{{ $db.existingSecretListenKey }}{{ else }}PLAYGATE_LISTEN_DATABASE_URL{{ end }}
{{- end }}
{{- if and .withApp (or (and $db.existingSecret $db.existingSecretStatsKey) (and (not $db.existingSecret) $db.statsUrl)) }}
- name: PLAYGATE_STATS_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $dbSecret }}
      key: {{ if $db.existingSecret }}{{ $db.existingSecretStatsKey }}{{ else }}PLAYGATE_STATS_DATABASE_URL{{ end }}
{{- end }}
{{- if .withApp }}
{{- with $ctx.Values.bootstrapAdmin }}
{{- if or .existingSecret .login }}
- name: PLAYGATE_BOOTSTRAP_ADMIN
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret | default $full }}
      key: {{ if .existingSecret }}{{ .existingSecretKey }}{{ else }}PLAYGATE_BOOTSTRAP_ADMIN{{ end }}
{{- end }}
{{- end }}
{{- with $ctx.Values.ome }}
{{- if or .existingSecret .secret }}
- name: PLAYGATE_OME_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret | default $full }}
      key: {{ if .existingSecret }}{{ .existingSecretKey }}{{ else }}PLAYGATE_OME_SECRET{{ end }}
{{- end }}
{{- end }}
{{- with $ctx.Values.viewerCookie }}
{{- if or .existingSecret .secret }}
- name: PLAYGATE_VIEWER_COOKIE_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret | default $full }}
      key: {{ if .existingSecret }}{{ .existingSecretKey }}{{ else }}PLAYGATE_VIEWER_COOKIE_SECRET{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The server's CA certificate (database.rootCertificate), for sslrootcert:
the volume, and its mount in a container.
*/}}
{{- define "playgate.rootCertificateVolume" -}}
{{- with .Values.database.rootCertificate }}
{{- if .existingSecret }}
- name: postgres-ca
  secret:
    secretName: {{ .existingSecret }}
    items:
      - key: {{ .key }}
        path: {{ .key }}
{{- end }}
{{- end }}
{{- end }}
{{- define "playgate.rootCertificateMount" -}}
{{- with .Values.database.rootCertificate }}
{{- if .existingSecret }}
- name: postgres-ca
  mountPath: {{ .mountPath }}
  readOnly: true
{{- end }}
{{- end }}
{{- end }}
