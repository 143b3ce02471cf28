apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ .Release.Name }}-device-plugin
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/component: hami-device-plugin
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  selector:
    matchLabels:
      app.kubernetes.io/component: hami-device-plugin
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/component: hami-device-plugin
        app.kubernetes.io/instance: {{ .Release.Name }}
    spec:
      {{- if .Values.devicePlugin.runtimeClassName }}
      runtimeClassName: {{ .Values.devicePlugin.runtimeClassName }}
      {{- end }}
      hostPID: true
      containers:
        - name: device-plugin
          image: {{ include "hami.image" (dict "image" .Values.devicePlugin.image "global" .Values.global "tag" (.Values.devicePlugin.image.tag | default .Values.global.imageTag)) | quote }}
          imagePullPolicy: {{ .Values.devicePlugin.image.pullPolicy }}
          command:
            - nvidia-device-plugin
            - --resource-name={{ .Values.resourceName }}
            - --mig-strategy={{ .Values.devicePlugin.migStrategy }}
            - --device-memory-scaling={{ .Values.devicePlugin.deviceMemoryScaling }}
            - --device-cores-scaling={{ .Values.devicePlugin.deviceCoreScaling }}
            - --device-split-count={{ .Values.devicePlugin.deviceSplitCount }}
      {{- if .Values.devicePlugin.nvidiaNodeSelector }}
      nodeSelector: {{ toYaml .Values.devicePlugin.nvidiaNodeSelector | nindent 8 }}
      {{- end }}
      {{- if .Values.devicePlugin.tolerations }}
      tolerations: {{ toYaml .Values.devicePlugin.tolerations | nindent 8 }}
      {{- end }}
