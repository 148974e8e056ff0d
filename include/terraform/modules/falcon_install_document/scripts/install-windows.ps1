# Falcon sensor on Windows: fetch, check, install with the CID, verify the service runs.
# Inputs arrive as environment variables SSM_<parameter> (interpolationType ENV_VAR).
$ErrorActionPreference = 'Stop'
$package = Join-Path $env:TEMP 'WindowsSensor.exe'
if ($env:SSM_InstallerUrl -like 's3://*') {
  Copy-S3Object -BucketName ($env:SSM_InstallerUrl -split '/')[2] -Key (($env:SSM_InstallerUrl -split '/', 4)[3]) -LocalFile $package | Out-Null
} else {
  Invoke-WebRequest -Uri $env:SSM_InstallerUrl -OutFile $package -UseBasicParsing
}
if ((Get-FileHash -Algorithm SHA256 $package).Hash.ToLower() -ne $env:SSM_InstallerSha256) { throw 'sensor package checksum differs' }
$cid = (Get-SSMParameter -Name $env:SSM_CidParameterName -WithDecryption $true).Value
$token = (Get-SSMParameter -Name $env:SSM_TokenParameterName -WithDecryption $true).Value
$install = Start-Process -FilePath $package -ArgumentList "/install /quiet /norestart CID=$cid ProvToken=$token" -Wait -PassThru
Remove-Variable cid, token
Remove-Item $package
if ($install.ExitCode -ne 0) { throw "sensor installer exited with $($install.ExitCode)" }
$service = $null
foreach ($i in 1..30) {
  $service = Get-Service -Name CSFalconService -ErrorAction SilentlyContinue
  if ($service -and $service.Status -eq 'Running') { break }
  Start-Sleep -Seconds 10
}
if (-not $service -or $service.Status -ne 'Running') { throw 'CSFalconService is not running after 5 minutes' }
Write-Output 'falcon sensor installed and running'
